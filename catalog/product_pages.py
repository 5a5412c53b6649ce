"""Product list pages cached as ids, and assembled from the products' own entries.

A cached page is its ordered ids and next cursor (a small JSON record), registered under the
dependency tags ``catalog.list_deps`` computes from its query and the range of sort values it
covers. A write that changes what a product shows but not where it is listed (a description, a
stock change that leaves it in stock, a price change outside a page's range) drops no page:
the product's own entry, which every write of it deletes, carries the new state.

A response is assembled from the record: each item's body comes from the product's entry (the
near cache, then one MGET), and the products found in neither are read with one
``WHERE id = ANY(...)``, stored back under their leases (as warming does) and used. On a miss the
rows the page query just read are used directly, so an uncached page costs one query, as before.
The bytes are the same as rendering the page whole: the items are the product representation,
and the page's ETag is the hash of the assembled body.
"""

from __future__ import annotations

import contextlib
from decimal import Decimal

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from cache.api import CacheUnavailable
from cache.entry import Payload
from cache.keys import CacheKey, KeyBuilder
from cache.region import Region

from . import list_deps
from .models import Product
from .representations import Rendered, etag_of, render_product
from .services.products import ProductPage


def page_key(keys: KeyBuilder, query: dict) -> CacheKey:
    """A page's key: the validated query in one canonical form (10, 10.0 and 10.00 are one price),
    in its category filter's scope, guarded per sort column."""
    params = {name: f"{value:.2f}" if isinstance(value, Decimal) else value for name, value in query.items()}
    scope = query["category"] or list_deps.ALL
    return keys.product_list(params, scope, list_deps.COLUMNS[query["sort"]])


def record(page: ProductPage, query: dict, next_cursor: str | None) -> Payload:
    """The cached form of a page: its ids and next cursor, tagged with what it depends on."""
    body = orjson.dumps({"ids": [row.id for row in page.rows], "next_cursor": next_cursor})
    tags = list_deps.page_tags(query, page.after_value, page.beyond_value)
    return Payload(200, body, etag_of(body), tags)


def assemble(db: Session, region: Region, record_body: bytes, rendered: dict[int, bytes]) -> Rendered:
    """The response for a cached page record; ``rendered`` holds bodies already in hand."""
    data = orjson.loads(record_body)
    bodies = product_bodies(db, region, data["ids"], rendered)
    items = b",".join(bodies[pid] for pid in data["ids"] if pid in bodies)
    body = b'{"items":[' + items + b'],"next_cursor":' + orjson.dumps(data["next_cursor"]) + b"}"
    return Rendered(body, etag_of(body))


def product_bodies(
    db: Session, region: Region, ids: list[int], rendered: dict[int, bytes]
) -> dict[int, bytes]:
    """Each active product's body by id: from ``rendered``, the cache, or one query for the rest.
    An id no longer active (a write between the page's fill and its invalidation) is left out."""
    bodies = {pid: rendered[pid] for pid in ids if pid in rendered}
    wanted = [pid for pid in ids if pid not in bodies]
    keys = [region.keys.product(pid) for pid in wanted]
    try:
        entries = region.get_many(keys)
    except CacheUnavailable:
        entries = [None] * len(keys)
    bodies.update({pid: entry.body for pid, entry in zip(wanted, entries, strict=True) if entry is not None})
    missing = [pid for pid in wanted if pid not in bodies]
    if missing:
        bodies.update(_read_and_store(db, region, missing))
    return bodies


def _read_and_store(db: Session, region: Region, ids: list[int]) -> dict[int, bytes]:
    keys = {pid: region.keys.product(pid) for pid in ids}
    try:
        reservation = region.reserve(list(keys.values()))  # leases before the read, as warming does
    except CacheUnavailable:
        reservation = None
    products = db.scalars(select(Product).where(Product.id.in_(ids), Product.is_active)).unique()
    rendered = {product.id: render_product(product) for product in products}
    if reservation is not None and reservation.generations:
        items = [(keys[pid], Payload(200, r.body, r.etag)) for pid, r in rendered.items()]
        with contextlib.suppress(CacheUnavailable):  # the next read stores them
            region.fill_many(items, reservation)
    return {pid: r.body for pid, r in rendered.items()}
