"""Every Redis key the cache uses is built here, and only here.

Layout: ``<prefix>:v<SCHEMA_VERSION>:{<tag>}:<kind>[:<params hash>]``. The ``{tag}`` is a
Redis Cluster hash tag: an entry, its lease and (for scoped resources) its generation
counter, fill guards and dependency-tag sets share one tag, so the Lua scripts and the MGET
on a hit touch a single slot.
Parameters arrive validated and normalized from the caller; they are serialized with
sorted keys and hashed with blake2b, so parameter order never yields a new key. Bumping
``SCHEMA_VERSION`` (when the cached body format changes) orphans every old key at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from hashlib import blake2b

import orjson

from .config import DEFAULT_KEY_PREFIX

SCHEMA_VERSION = 1

BODY, LEASE, GENERATION, GUARD, TAG = "body", "lease", "gen", "guard", "tag"

RESOURCE_TAGS = {
    "product": "p",
    "product_list": "l",
    "category_tree": "ct",
    "category": "c",
    "reviews": "r",
    "flask_cache": "fc",
}

_TOKEN = re.compile(r"[A-Za-z0-9_.:-]{1,100}")


@dataclass(frozen=True)
class CacheKey:
    """The keys of one cached resource; ``resource`` selects the TTL policy and metric labels.

    ``generation`` is read with the entry on every hit: bumping it drops every entry of the scope.
    ``guard`` is read only when the lease is taken and checked when the fill is stored: bumping it
    rejects fills in flight without touching stored entries, which dependency tags then drop
    one by one (see ``Region.invalidate``)."""

    resource: str
    entry: str
    lease: str
    generation: str | None = None
    guard: str | None = None


class KeyBuilder:
    """Builds ``CacheKey``s for each cached resource under one prefix and schema version."""

    def __init__(self, prefix: str = DEFAULT_KEY_PREFIX, schema_version: int = SCHEMA_VERSION):
        self.namespace = f"{_token(prefix)}:v{schema_version}"

    def product(self, product_id: int) -> CacheKey:
        return self._single("product", str(_id(product_id)))

    def category_tree(self) -> CacheKey:
        return self._single("category_tree", None)

    def category(self, slug: str) -> CacheKey:
        return self._single("category", _token(slug))

    def flask_cache(self, name: str) -> CacheKey:
        """An entry of Flask-Caching's decorators (``api.flask_cache``); its key, any string, hashed."""
        return self._single("flask_cache", blake2b(name.encode(), digest_size=16).hexdigest())

    def product_list(self, params: Mapping, scope: str, guard: str) -> CacheKey:
        """A list page: no generation (writes drop pages by dependency tag), and the fill guard
        ``guard`` of its scope (one per sort column, so a write guards only the orders it moves)."""
        base, digest = self._tag("product_list", _token(scope)), params_digest(params)
        return CacheKey(
            "product_list",
            f"{base}:{BODY}:{digest}",
            f"{base}:{LEASE}:{digest}",
            None,
            self.list_guard(scope, guard),
        )

    def list_guard(self, scope: str, name: str) -> str:
        return f"{self._tag('product_list', _token(scope))}:{GUARD}:{_token(name)}"

    def list_tag(self, scope: str, name: str) -> str:
        """The set of list-page keys of ``scope`` that depend on ``name`` (``Region.invalidate``)."""
        return tag_key(f"{self._tag('product_list', _token(scope))}:", name)

    def reviews(self, product_id: int, params: Mapping) -> CacheKey:
        return self._scoped("reviews", str(_id(product_id)), params)

    def reviews_generation(self, product_id: int) -> str:
        return f"{self._tag('reviews', str(_id(product_id)))}:{GENERATION}"

    def negative_budget(self, window: int) -> str:
        return f"{self.namespace}:negative-budget:{window}"

    def pattern(self, resource: str | None = None) -> str:
        """SCAN pattern for ``resource``; without one, every key under the prefix, any version."""
        if resource is None:
            return self.namespace.rsplit(":", 1)[0] + ":*"
        return f"{self.namespace}:{{{RESOURCE_TAGS[resource]}[:}}]*"

    def _tag(self, resource: str, ident: str | None) -> str:
        tag = RESOURCE_TAGS[resource] if ident is None else f"{RESOURCE_TAGS[resource]}:{ident}"
        return f"{self.namespace}:{{{tag}}}"

    def _single(self, resource: str, ident: str | None) -> CacheKey:
        base = self._tag(resource, ident)
        return CacheKey(resource, f"{base}:{BODY}", f"{base}:{LEASE}")

    def _scoped(self, resource: str, ident: str, params: Mapping) -> CacheKey:
        base, digest = self._tag(resource, ident), params_digest(params)
        return CacheKey(
            resource, f"{base}:{BODY}:{digest}", f"{base}:{LEASE}:{digest}", f"{base}:{GENERATION}"
        )


def tag_key(entry_key: str, name: str) -> str:
    """The dependency-tag set ``name`` in the hash tag of ``entry_key``: the same slot, so one
    script can store an entry and register it."""
    base, closed, _ = entry_key.partition("}:")
    if not closed:
        raise ValueError(f"not a key built here: {entry_key!r}")
    return f"{base}}}:{TAG}:{_token(name)}"


def key_kind(key: str) -> str | None:
    """``body``, ``lease``, ``gen``, ``guard`` or ``tag`` for a key built here, else ``None``."""
    _, closed, rest = key.partition("}:")
    kind = rest.split(":", 1)[0]
    return kind if closed and kind in (BODY, LEASE, GENERATION, GUARD, TAG) else None


def params_digest(params: Mapping) -> str:
    canonical = orjson.dumps(dict(params), option=orjson.OPT_SORT_KEYS)
    return blake2b(canonical, digest_size=16).hexdigest()


def _id(value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"expected a non-negative integer id, got {value!r}")
    return value


def _token(value: str) -> str:
    # Braces would break the hash tag and glob characters would break purge patterns.
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise ValueError(f"expected 1-100 characters of [A-Za-z0-9_.:-], got {value!r}")
    return value
