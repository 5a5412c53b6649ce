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

import orjson
from marshmallow import ValidationError
from rq import get_current_job
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog import pagination, popularity, product_pages, readiness
from catalog.caching import payload
from catalog.models import Category, Product, ProductRatingSummary
from catalog.popularity import most_viewed
from catalog.queues import release_pending
from catalog.representations import REVIEW_PAGE, render, render_product
from catalog.runtime import Runtime
from catalog.schemas import SORTS, PageQuerySchema, ProductListQuerySchema
from catalog.services import products as product_service
from catalog.services.categories import get_category_by_slug, subtree_ids

from . import context

BATCH = 500
START_PAGES = 200
"""First list pages the warm on start fills, the most read first."""
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
    runtime = context.runtime()
    region = runtime.bulk_region  # its own timeout and breaker, not the requests'
    with context.session() as db:
        targets, note = _targets(db, runtime, scope, limit, category, ids)
        stored = 0
        for start in range(0, len(targets), BATCH):
            stored += warm_products(db, region, targets[start : start + BATCH])
            report(min(start + BATCH, len(targets)), len(targets))
        pages = sum(warm_list_pages(db, region, runtime, slug) for slug in _list_scopes(db, scope, category))
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
    items = [(keys[p.id], payload(render_product(p))) for p in rows]
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
    secret = context.runtime().settings.secret_key
    items = []
    for pid, (rows, last) in product_service.first_review_pages(db, reserved, limit).items():
        query = {"limit": limit, "cursor": None, "product_id": pid}
        cursor = None if last is None else pagination.encode(secret, query, last)
        items.append((keys[pid], payload(render(REVIEW_PAGE, {"items": rows, "next_cursor": cursor}))))
    db.expunge_all()
    return region.fill_many(items, reservation)


def _list_scopes(db: Session, scope: str, category: str | None) -> list[str | None]:
    """Whose list pages a warm fills: the category's; for the whole catalog, every category's and
    the unfiltered list's (None); none for popular or explicit products."""
    if scope == "category":
        return [category]
    if scope == "all":
        return [None, *db.scalars(select(Category.slug).order_by(Category.slug))]
    return []


def warm_list_pages(db: Session, region, runtime: Runtime, slug: str | None) -> int:
    """The first page of every sort of a category's list (of the unfiltered list when ``slug`` is
    None), keyed exactly as a request's would be."""
    scope = {} if slug is None else {"category": slug}
    queries = [ProductListQuerySchema().load({**scope, "sort": sort}) for sort in SORTS]
    return warm_page_queries(db, region, runtime, queries)


def warm_page_queries(
    db: Session, region, runtime: Runtime, queries: list[dict], shown: list[int] | None = None
) -> int:
    """The first pages of validated list ``queries``, keyed exactly as a request's would be; the ids of
    the products they list are added to ``shown``, when given."""
    if not queries:
        return 0
    secret = runtime.settings.secret_key
    keys = [product_pages.page_key(region.keys, query) for query in queries]
    reservation = region.reserve(keys)
    items = []
    for key, query in zip(keys, queries, strict=True):
        if key in reservation.generations:
            page = product_service.list_products(db, query, None)
            if shown is not None:
                shown.extend(row.id for row in page.rows)
            cursor = None if page.next_key is None else pagination.encode(secret, query, page.next_key)
            items.append((key, product_pages.record(page, query, cursor)))
    return region.fill_many(items, reservation) if items else 0


def warm_on_start(limit: int, pages: int = START_PAGES) -> dict:
    """The warm a starting API waits for (catalog.readiness): the most read first list pages, then the
    most viewed products in batches, then the products those pages list (a page hit is assembled
    from its products' entries), reporting after each step the share of all recorded reads (page
    reads and product views) filled so far."""
    runtime = context.runtime()
    connection, region = runtime.queue, runtime.bulk_region
    page_counts = popularity.scored(connection, popularity.PAGES_KEY, pages)
    product_counts = popularity.scored(connection, popularity.POPULARITY_KEY, limit)
    total = popularity.total_reads(connection, popularity.PAGES_KEY)
    total += popularity.total_reads(connection, popularity.POPULARITY_KEY)
    queries, covered, shown = _page_queries(page_counts), 0.0, []
    with context.session() as db:
        list_pages = warm_page_queries(db, region, runtime, [query for query, _ in queries], shown)
        covered += sum(reads for _, reads in queries)
        readiness.report(connection, covered / total if total else 0.0, done=False)
        views = {int(member): reads for member, reads in product_counts}
        targets = list(dict.fromkeys([*(list(views) or _most_reviewed(db, limit)), *shown]))
        stored = 0
        for start in range(0, len(targets), BATCH):
            batch = targets[start : start + BATCH]
            stored += warm_products(db, region, batch)
            covered += sum(views.get(pid, 0.0) for pid in batch)
            readiness.report(connection, covered / total if total else 0.0, done=False)
    readiness.report(connection, covered / total if total else 1.0, done=True)
    return {"scope": "start", "products": len(targets), "stored": stored, "list_pages": list_pages}


def _page_queries(counted: list[tuple[bytes, float]]) -> list[tuple[dict, float]]:
    """Recorded list queries, validated again (they were read back from Redis); bad ones skipped."""
    schema, valid = ProductListQuerySchema(), []
    for member, reads in counted:
        try:
            valid.append((schema.load(orjson.loads(member)), reads))
        except (orjson.JSONDecodeError, ValidationError, TypeError):
            continue
    return valid


def _targets(db: Session, runtime: Runtime, scope, limit, category, ids) -> tuple[list[int], str]:
    """The products to warm, and a note on how they were chosen where the count may surprise."""
    if scope == "ids":
        return list(dict.fromkeys(ids)), ""
    if scope == "popular":
        return _popular(db, runtime, limit or DEFAULT_POPULAR)
    stmt = select(Product.id).where(Product.is_active).order_by(Product.id)
    if scope == "category":
        stmt = stmt.where(Product.category_id.in_(subtree_ids(db, get_category_by_slug(db, category).id)))
    return list(db.scalars(stmt.limit(limit) if limit else stmt)), ""


def _popular(db: Session, runtime: Runtime, limit: int) -> tuple[list[int], str]:
    """The most viewed products, topped up with the most reviewed ones when fewer were viewed (a
    fresh start has counted few views): a warm of 5,000 warms 5,000 where the catalog has them."""
    viewed = most_viewed(runtime.queue, limit)
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
