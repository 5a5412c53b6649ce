"""Every Redis key the cache uses is built here, and only here.

Layout: ``<prefix>:v<SCHEMA_VERSION>:{<tag>}:<kind>[:<params hash>]``. The ``{tag}`` is a
Redis Cluster hash tag: an entry, its lease and (for scoped resources) its generation
counter, fill guards and dependency-tag sets share one tag, so the Lua scripts and the MGET
on a hit touch a single slot.
The app declares its resources, each with the hash tag its keys start with, and builds their keys
from the generic shapes of ``KeyBuilder`` (Shelf's declaration is ``catalog.resources``).
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

Ident = str | None

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
    """Builds ``CacheKey``s under one prefix and schema version, for the resources ``tags`` names.

    The app declares its resources and hands their hash tags in (``{resource: tag}``); the shapes
    here are generic: one entry per ident (:meth:`single`, :meth:`hashed`), entries per parameters
    under a generation per ident (:meth:`scoped`), and entries per parameters in a scope whose fills
    a guard voids and dependency tags drop (:meth:`guarded`). An ident is a :func:`token`; an id
    becomes one through :func:`number`."""

    def __init__(
        self,
        prefix: str = DEFAULT_KEY_PREFIX,
        tags: Mapping[str, str] | None = None,
        schema_version: int = SCHEMA_VERSION,
    ):
        self.namespace = f"{token(prefix)}:v{schema_version}"
        self.tags = {resource: token(tag) for resource, tag in (tags or {}).items()}

    def single(self, resource: str, ident: Ident) -> CacheKey:
        """The one entry of ``resource`` for ``ident`` (None: the resource has one entry)."""
        base = self._tag(resource, ident)
        return CacheKey(resource, f"{base}:{BODY}", f"{base}:{LEASE}")

    def hashed(self, resource: str, name: str) -> CacheKey:
        """The entry of ``resource`` named by any string, hashed into an ident."""
        return self.single(resource, blake2b(name.encode(), digest_size=16).hexdigest())

    def scoped(self, resource: str, ident: Ident, params: Mapping) -> CacheKey:
        """An entry per ``params`` of ``ident``, under ``ident``'s generation (:meth:`generation`)."""
        base, digest = self._tag(resource, ident), params_digest(params)
        return CacheKey(
            resource, f"{base}:{BODY}:{digest}", f"{base}:{LEASE}:{digest}", f"{base}:{GENERATION}"
        )

    def guarded(self, resource: str, scope: str, params: Mapping, guard: str) -> CacheKey:
        """An entry per ``params`` in ``scope``: no generation (writes drop such entries by dependency
        tag, :meth:`tag`), and the fill guard ``guard`` of the scope (:meth:`guard`)."""
        base, digest = self._tag(resource, scope), params_digest(params)
        return CacheKey(
            resource,
            f"{base}:{BODY}:{digest}",
            f"{base}:{LEASE}:{digest}",
            None,
            self.guard(resource, scope, guard),
        )

    def guard(self, resource: str, scope: str, name: str) -> str:
        return f"{self._tag(resource, scope)}:{GUARD}:{token(name)}"

    def tag(self, resource: str, scope: str, name: str) -> str:
        """The set of ``resource``'s keys in ``scope`` that depend on ``name`` (``Region.invalidate``)."""
        return tag_key(f"{self._tag(resource, scope)}:", name)

    def generation(self, resource: str, ident: Ident) -> str:
        """The generation counter a bump increments to drop every entry of ``ident`` at once."""
        return f"{self._tag(resource, ident)}:{GENERATION}"

    def negative_budget(self, window: int) -> str:
        return f"{self.namespace}:negative-budget:{window}"

    def pattern(self, resource: str | None = None) -> str:
        """SCAN pattern for ``resource``; without one, every key under the prefix, any version."""
        if resource is None:
            return self.namespace.rsplit(":", 1)[0] + ":*"
        return f"{self.namespace}:{{{self.tags[resource]}[:}}]*"

    def _tag(self, resource: str, ident: Ident) -> str:
        tag = self.tags[resource]
        if ident is not None:
            tag = f"{tag}:{token(ident)}"
        return f"{self.namespace}:{{{tag}}}"


def tag_key(entry_key: str, name: str) -> str:
    """The dependency-tag set ``name`` in the hash tag of ``entry_key``: the same slot, so one
    script can store an entry and register it."""
    base, closed, _ = entry_key.partition("}:")
    if not closed:
        raise ValueError(f"not a key built here: {entry_key!r}")
    return f"{base}}}:{TAG}:{token(name)}"


def key_kind(key: str) -> str | None:
    """``body``, ``lease``, ``gen``, ``guard`` or ``tag`` for a key built here, else ``None``."""
    _, closed, rest = key.partition("}:")
    kind = rest.split(":", 1)[0]
    return kind if closed and kind in (BODY, LEASE, GENERATION, GUARD, TAG) else None


def params_digest(params: Mapping) -> str:
    canonical = orjson.dumps(dict(params), option=orjson.OPT_SORT_KEYS)
    return blake2b(canonical, digest_size=16).hexdigest()


def number(value: int) -> int:
    """``value`` when it is a non-negative integer id, else ValueError."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"expected a non-negative integer id, got {value!r}")
    return value


def token(value: str) -> str:
    """``value`` when it is safe in a key (a slug, a scope, an ident), else ValueError."""
    # Braces would break the hash tag and glob characters would break purge patterns.
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise ValueError(f"expected 1-100 characters of [A-Za-z0-9_.:-], got {value!r}")
    return value
