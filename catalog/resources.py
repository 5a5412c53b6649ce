"""Shelf's cached resources, declared once: each one's name, the hash tag of its keys, its TTLs.

The ``cache`` package knows no resource: it is handed the TTLs (``ttls()``) and the tags (the key
builder's), and ``CatalogKeys`` builds each resource's keys with the builder's generic shapes.
The admin API's purge choices and the CLI's ``cache purge --resource`` are ``NAMES``; the
per-resource counters of ``/v1/admin/cache/stats`` are labelled by them too.

Key shapes (``cache.keys`` documents the layout):

* ``product``, ``category``, ``category_tree``, ``flask_cache``: one entry per id, slug or name;
* ``reviews``: one entry per page of a product's reviews, under a generation per product that a
  review bumps (every page of the product at once);
* ``product_list``: one entry per validated list query in its scope (``all`` or a category slug),
  with a fill guard per sort column and dependency tags (``catalog.list_deps``).

The soft TTL only bounds the damage of a missed invalidation: writes invalidate explicitly.
``SHELF_CACHE_TTLS`` overrides any of them (``ttls``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cache.config import ResourceTTL
from cache.keys import CacheKey, KeyBuilder, number, token


@dataclass(frozen=True)
class Resource:
    name: str  # the TTL policy's, the metrics' label, the purge choice
    tag: str  # the Redis hash tag its keys start with: also its edge surrogate key (catalog.edge_tags)
    ttl: ResourceTTL


PRODUCT = Resource("product", "p", ResourceTTL(hard=3600, soft=300))
PRODUCT_LIST = Resource("product_list", "l", ResourceTTL(hard=900, soft=60))
CATEGORY_TREE = Resource("category_tree", "ct", ResourceTTL(hard=3600, soft=600))
CATEGORY = Resource("category", "c", ResourceTTL(hard=3600, soft=300))
REVIEWS = Resource("reviews", "r", ResourceTTL(hard=900, soft=120))
FLASK_CACHE = Resource("flask_cache", "fc", ResourceTTL(hard=600, soft=300))

RESOURCES = (PRODUCT, PRODUCT_LIST, CATEGORY_TREE, CATEGORY, REVIEWS, FLASK_CACHE)
NAMES = tuple(resource.name for resource in RESOURCES)
"""Every cached resource by name: the choices of a purge."""


def ttls(overrides: Mapping[str, tuple[float, float]] | None = None) -> dict[str, ResourceTTL]:
    """Each resource's TTLs, ``overrides`` (``{name: (hard, soft)}``, from Settings) applied."""
    declared = {resource.name: resource.ttl for resource in RESOURCES}
    return declared | {name: ResourceTTL(hard, soft) for name, (hard, soft) in (overrides or {}).items()}


class CatalogKeys(KeyBuilder):
    """The keys of each of Shelf's resources, under one prefix and schema version."""

    def __init__(self, prefix: str | None = None, schema_version: int | None = None):
        options = {"schema_version": schema_version} if schema_version is not None else {}
        if prefix is not None:
            options["prefix"] = prefix
        super().__init__(tags={resource.name: resource.tag for resource in RESOURCES}, **options)

    def product(self, product_id: int) -> CacheKey:
        return self.single(PRODUCT.name, str(number(product_id)))

    def category_tree(self) -> CacheKey:
        return self.single(CATEGORY_TREE.name, None)

    def category(self, slug: str) -> CacheKey:
        return self.single(CATEGORY.name, token(slug))

    def flask_cache(self, name: str) -> CacheKey:
        """An entry of Flask-Caching's decorators (``api.flask_cache``); its key, any string, hashed."""
        return self.hashed(FLASK_CACHE.name, name)

    def product_list(self, params: Mapping, scope: str, guard: str) -> CacheKey:
        """A list page: no generation (writes drop pages by dependency tag), and the fill guard
        ``guard`` of its scope (one per sort column, so a write guards only the orders it moves)."""
        return self.guarded(PRODUCT_LIST.name, scope, params, guard)

    def list_guard(self, scope: str, name: str) -> str:
        return self.guard(PRODUCT_LIST.name, scope, name)

    def list_tag(self, scope: str, name: str) -> str:
        """The set of list-page keys of ``scope`` that depend on ``name`` (``Region.invalidate``)."""
        return self.tag(PRODUCT_LIST.name, scope, name)

    def reviews(self, product_id: int, params: Mapping) -> CacheKey:
        return self.scoped(REVIEWS.name, str(number(product_id)), params)

    def reviews_generation(self, product_id: int) -> str:
        return self.generation(REVIEWS.name, str(number(product_id)))
