"""Cache warming: fill product entries, their first review page (and a category's first list
pages) ahead of reads.

Warming uses the read path's own fill rules: per batch it takes the keys'
leases *before* one SELECT reads the rows, then stores them in one pipelined
round trip, each store checked against its lease and generation, so a write
that lands meanwhile wins and a warm never overwrites a newer entry. Keys
whose lease a reader holds are skipped: that reader is filling them.
"""

from __future__ import annotations

from collections.abc import Callable

from rq import get_current_job
from sqlalchemy import select
from sqlalchemy.orm import Session

from api import caching, pagination, product_pages
from api.models import Product, ProductRatingSummary
from api.popularity import most_viewed
from api.representations import REVIEW_PAGE, render, render_product
from api.schemas import SORTS, PageQuerySchema, ProductListQuerySchema
from api.services import products as product_service
from api.services.categories import get_category_by_slug, subtree_ids

from . import context
from .queues import release_pending

BATCH = 500
SCOPES = ("popular", "category", "ids", "all")
DEFAULT_POPULAR = 5000

Progress = Callable[[int, int], None]


def warm(
    scope: str,
    limit: int | None = None,
    category: str | None = None,
    ids: list[int] | None = None,
    *,
    progress: Progress | None = None,
) -> dict:
    """Warm ``scope``: the most viewed products, a category, explicit ids, or the whole catalog."""
    job = get_current_job()
    if job is not None:
        release_pending(job.connection, job)
    report = progress or _job_progress(job)
    app = context.app()
    region = app.extensions["shelf.bulk_region"]  # its own timeout and breaker, not the requests'
    with context.session() as db:
        targets, note = _targets(db, app, scope, limit, category, ids)
        stored = 0
        for start in range(0, len(targets), BATCH):
            stored += warm_products(db, region, targets[start : start + BATCH])
            report(min(start + BATCH, len(targets)), len(targets))
        pages = warm_list_pages(db, region, app, category) if scope == "category" else 0
    summary = {"scope": scope, "products": len(targets), "stored": stored, "list_pages": pages}
    if stored < len(targets):
        note += (
            f"{'; ' if note else ''}{len(targets) - stored} not stored (inactive, or a read was filling it)"
        )
    return {**summary, "note": note} if note else summary


def warm_products(db: Session, region, product_ids: list[int]) -> int:
    keys = {pid: region.keys.product(pid) for pid in product_ids}
    reservation = region.reserve(list(keys.values()))
    reserved = [pid for pid in product_ids if keys[pid] in reservation.generations]
    if not reserved:
        return 0
    rows = list(db.scalars(select(Product).where(Product.id.in_(reserved), Product.is_active)).unique())
    items = [(keys[p.id], caching.payload(render_product(p))) for p in rows]
    db.expunge_all()
    stored = region.fill_many(items, reservation)
    warm_review_pages(db, region, [p.id for p in rows])
    return stored


def warm_review_pages(db: Session, region, product_ids: list[int]) -> int:
    """The first page of each product's reviews (the default page size), keyed as a request's."""
    limit = PageQuerySchema().load({})["limit"]
    keys = {pid: region.keys.reviews(pid, {"limit": limit, "cursor": None}) for pid in product_ids}
    reservation = region.reserve(list(keys.values()))
    reserved = [pid for pid in product_ids if keys[pid] in reservation.generations]
    if not reserved:
        return 0
    secret = context.app().config["SHELF"].secret_key
    items = []
    for pid, (rows, last) in product_service.first_review_pages(db, reserved, limit).items():
        query = {"limit": limit, "cursor": None, "product_id": pid}
        cursor = None if last is None else pagination.encode(secret, query, last)
        items.append(
            (keys[pid], caching.payload(render(REVIEW_PAGE, {"items": rows, "next_cursor": cursor})))
        )
    db.expunge_all()
    return region.fill_many(items, reservation)


def warm_list_pages(db: Session, region, app, slug: str) -> int:
    """The first page of every sort of a category's list, keyed exactly as a request's would be."""
    secret = app.config["SHELF"].secret_key
    queries = [ProductListQuerySchema().load({"category": slug, "sort": sort}) for sort in SORTS]
    keys = [product_pages.page_key(region.keys, query) for query in queries]
    reservation = region.reserve(keys)
    items = []
    for key, query in zip(keys, queries, strict=True):
        if key in reservation.generations:
            page = product_service.list_products(db, query, None)
            cursor = None if page.next_key is None else pagination.encode(secret, query, page.next_key)
            items.append((key, product_pages.record(page, query, cursor)))
    return region.fill_many(items, reservation) if items else 0


def _targets(db: Session, app, scope, limit, category, ids) -> tuple[list[int], str]:
    """The products to warm, and a note on how they were chosen where the count may surprise."""
    if scope == "ids":
        return list(dict.fromkeys(ids)), ""
    if scope == "popular":
        return _popular(db, app, limit or DEFAULT_POPULAR)
    stmt = select(Product.id).where(Product.is_active).order_by(Product.id)
    if scope == "category":
        stmt = stmt.where(Product.category_id.in_(subtree_ids(db, get_category_by_slug(db, category).id)))
    return list(db.scalars(stmt.limit(limit) if limit else stmt)), ""


def _popular(db: Session, app, limit: int) -> tuple[list[int], str]:
    """The most viewed products, topped up with the most reviewed ones when fewer were viewed (a
    fresh start has counted few views): a warm of 5,000 warms 5,000 where the catalog has them."""
    viewed = most_viewed(app.extensions["shelf.queue"], limit)
    targets = viewed
    if len(viewed) < limit:
        targets = list(dict.fromkeys([*viewed, *_most_reviewed(db, limit + len(viewed))]))[:limit]
    note = f"{len(viewed)} most viewed, then {len(targets) - len(viewed)} most reviewed"
    if len(targets) < limit:
        note += f"; the catalog has no more than {len(targets)} active products"
    return targets, note


def _most_reviewed(db: Session, limit: int) -> list[int]:
    """Where too few were viewed, the most reviewed products stand in for the most popular."""
    stmt = (
        select(Product.id)
        .join(ProductRatingSummary)
        .where(Product.is_active)
        .order_by(ProductRatingSummary.review_count.desc(), Product.id)
        .limit(limit)
    )
    return list(db.scalars(stmt))


def _job_progress(job) -> Progress:
    def report(done: int, total: int) -> None:
        if job is not None:
            job.meta["progress"] = {"done": done, "total": total}
            job.save_meta()

    return report
