"""Surrogate keys: what a cacheable response depends on, in the header an HTTP cache purges by.

The tags are the Redis hash tags of Shelf's own cache keys (``cache.keys``): ``p:<id>`` for a
product, ``c:<slug>`` for a category, ``ct`` for the category tree, ``r:<id>`` for a product's
review pages, and ``l:<scope>`` for the list pages of a scope (``all`` or a category slug). A
response is tagged with its entry key's hash tag; an assembled list page also with ``p:<id>`` of
every item it shows, since the edge stores the assembled body where Shelf stores only the ids.
A write purges the hash tag of every key its outbox row names (entries deleted, generations and
guards bumped, dependency tags dropped), so the edge drops whatever Shelf's own cache drops.

List pages are tagged per scope, not by the segment-tree nodes ``catalog.list_deps`` registers them
under in Redis: a write that moves one product's listing then purges every page of its scopes
at the edge (only writes that move a listing: a stock or description change names no list tag),
while the fine tags would put up to ~40 tags on a page and ~500 in a create's purge. Coarser
is still correct: a superset of what Shelf's own cache drops.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from .resources import PRODUCT


def header_name(setting: str) -> str | None:
    """The response header ``SHELF_EDGE_TAG_HEADER`` names (``xkey``, ``Surrogate-Key``), or None."""
    return None if setting == "none" else setting


def tag_of(redis_key: str) -> str:
    """The hash tag of a key built by ``cache.keys`` (``ns:v1:{p:12}:body`` is ``p:12``)."""
    start = redis_key.index("{") + 1
    return redis_key[start : redis_key.index("}", start)]


def product_tag(product_id: int) -> str:
    return f"{PRODUCT.tag}:{product_id}"


def list_item_tags(record_body: bytes) -> tuple[str, ...]:
    """The product tags of a cached list-page record (``catalog.product_pages.record``)."""
    return tuple(product_tag(pid) for pid in orjson.loads(record_body)["ids"])


def write_tags(invalidation: dict) -> list[str]:
    """The tags an outbox row (``catalog.invalidation.invalidation_for``) makes stale, sorted."""
    # A "delete" row is [resource, entry key, lease key, generation key, guard key].
    keys = [row[1] for row in invalidation["delete"]] + invalidation["bump"] + invalidation.get("tags", [])
    return sorted({tag_of(key) for key in keys})


def header_value(redis_key: str, extra: Iterable[str] = ()) -> str:
    """The header value of a response cached under ``redis_key`` that also shows ``extra``."""
    return " ".join((tag_of(redis_key), *extra))
