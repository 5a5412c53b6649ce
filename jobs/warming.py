"""Cache warming: fill product entries, their first review page (and a category's first list
pages) ahead of reads.

Warming uses the read path's own fill rules: per batch it takes the keys'
leases *before* one SELECT reads the rows, then stores them in one pipelined
round trip, each store checked against its lease and generation, so a write
that lands meanwhile wins and a warm never overwrites a newer entry. Keys
whose lease a reader holds are skipped: that reader is filling them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import orjson
from marshmallow import ValidationError
from rq import get_current_job
from sqlalchemy import func, select
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
PAGE_BATCH = 20
"""List pages per lease: each is a query of its own (tens of ms on a large catalog), and a batch must
be stored within the leases' TTL or every fill in it is rejected."""
START_PAGES = 1000
"""Recorded list pages the warm on start fills, the most read first."""
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


def warm_products(db: Session, region, product_ids: list[int], reviews: bool = True) -> int:
    """Store the products' entries (and, with ``reviews``, their first review pages)."""
    keys = {pid: region.keys.product(pid) for pid in product_ids}
    reservation = region.reserve(list(keys.values()))
    reserved = [pid for pid in product_ids if keys[pid] in reservation.generations]
    if not reserved:
        return 0
    rows = list(db.scalars(select(Product).where(Product.id.in_(reserved), Product.is_active)).unique())
    items = [(keys[p.id], payload(render_product(p))) for p in rows]
    db.expunge_all()
    stored = region.fill_many(items, reservation)
    if reviews:
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
    return warm_page_queries(db, region, runtime, _first_page_queries(slug))


def warm_page_queries(
    db: Session, region, runtime: Runtime, queries: list[dict], shown: list[int] | None = None
) -> int:
    """The first pages of validated list ``queries``, keyed exactly as a request's would be; the ids of
    the products they list are added to ``shown``, when given. In batches of ``PAGE_BATCH``: a page is
    a query of its own, and a batch's fills must arrive before its leases expire."""
    return sum(
        _warm_page_batch(db, region, runtime, queries[start : start + PAGE_BATCH], shown)
        for start in range(0, len(queries), PAGE_BATCH)
    )


def _warm_page_batch(
    db: Session, region, runtime: Runtime, queries: list[dict], shown: list[int] | None
) -> int:
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
    """The warm a starting API waits for (catalog.readiness): the most read first list pages, the most
    viewed products, the products those pages list (a page hit is assembled from its products'
    entries), the first page of every sort of every list no count names, then, up to ``limit``
    products in all, the catalog's other active products (entries only). After each step it reports
    the share of the coming reads filled so far, as ``Coverage`` estimates it."""
    runtime = context.runtime()
    connection, region = runtime.queue, runtime.bulk_region
    queries = _page_queries(popularity.scored(connection, popularity.PAGES_KEY, pages))
    counted = popularity.scored(connection, popularity.POPULARITY_KEY, limit)
    views = {int(member): reads for member, reads in counted}
    with context.session() as db:
        recorded = {popularity.page_member(query) for query, _ in queries}
        unread_pages = [q for q in _first_pages(db) if popularity.page_member(q) not in recorded]
        coverage = Coverage(
            Tally.counted(connection, popularity.PAGES_KEY, len(recorded) + len(unread_pages)),
            Tally.counted(connection, popularity.POPULARITY_KEY, _active_products(db)),
        )
        shown: list[int] = []
        list_pages = warm_page_queries(db, region, runtime, [query for query, _ in queries], shown)
        coverage.pages.filled([reads for _, reads in queries])
        readiness.report(connection, coverage.share(), done=False)
        targets = list(dict.fromkeys([*(list(views) or _most_reviewed(db, limit)), *shown]))[:limit]
        stored, products = 0, len(targets)
        for start in range(0, len(targets), BATCH):
            batch = targets[start : start + BATCH]
            stored += warm_products(db, region, batch)
            coverage.views.filled([views.get(pid, 0.0) for pid in batch])
            readiness.report(connection, coverage.share(), done=False)
        list_pages += warm_page_queries(db, region, runtime, unread_pages)
        coverage.pages.filled([0.0] * len(unread_pages))
        readiness.report(connection, coverage.share(), done=False)
        for batch in _unread(db, set(targets), limit - len(targets)):
            stored += warm_products(db, region, batch, reviews=False)
            products += len(batch)
            coverage.views.filled([0.0] * len(batch))
            readiness.report(connection, coverage.share(), done=False)
    readiness.report(connection, coverage.share() if coverage.reads else 1.0, done=True)
    return {"scope": "start", "products": products, "stored": stored, "list_pages": list_pages}


@dataclass
class Tally:
    """What a warm has filled of one kind of read (first list pages, or product views), against the
    recorded counts.

    Counting started recently, so many items have not been read yet, though together they will be:
    the Good-Turing estimate puts the share of reads going to items never seen at ``n1 / n`` (items
    read exactly once, over all reads recorded). The rest is shared by the items seen, in proportion
    to their counts; the unseen share is spread evenly over the items no count names. So a warm of
    only the counted items cannot look complete while the counts are young."""

    reads: float  # recorded reads
    unseen: float  # the share of the coming reads that go to items never read
    unread: int  # items no count names, which a warm could fill
    filled_reads: float = 0.0
    filled_unread: int = 0

    @classmethod
    def counted(cls, connection, key: str, items: int) -> Tally:
        """From the counts under ``key``, of a population of ``items``."""
        reads, once, seen = popularity.counts(connection, key)
        return cls(reads, once / reads if reads else 1.0, max(items - seen, 0))

    def filled(self, reads: list[float]) -> None:
        """Items stored, each with its recorded reads (0: an item no count names)."""
        self.filled_reads += sum(reads)
        self.filled_unread += sum(1 for count in reads if not count)

    def share(self) -> float:
        seen = self.filled_reads / self.reads * (1 - self.unseen) if self.reads else 0.0
        unread = min(self.filled_unread / self.unread, 1.0) if self.unread else 1.0
        return seen + self.unseen * unread


@dataclass
class Coverage:
    """The share of the coming reads a warm has filled: its tallies, weighed by their recorded reads."""

    pages: Tally
    views: Tally

    @property
    def reads(self) -> float:
        return self.pages.reads + self.views.reads

    def share(self) -> float:
        if not self.reads:
            return 0.0
        return (self.pages.reads * self.pages.share() + self.views.reads * self.views.share()) / self.reads


def _first_pages(db: Session) -> list[dict]:
    """The first page of every sort of every category's list and of the unfiltered list."""
    slugs = [None, *db.scalars(select(Category.slug).order_by(Category.slug))]
    return [query for slug in slugs for query in _first_page_queries(slug)]


def _first_page_queries(slug: str | None) -> list[dict]:
    scope = {} if slug is None else {"category": slug}
    return [ProductListQuerySchema().load({**scope, "sort": sort}) for sort in SORTS]


def _active_products(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(Product).where(Product.is_active))


def _unread(db: Session, done: set[int], limit: int) -> Iterator[list[int]]:
    """Active products not in ``done``, in id order, in batches, ``limit`` in all."""
    after = 0
    while limit > 0:
        stmt = select(Product.id).where(Product.is_active, Product.id > after)
        ids = list(db.scalars(stmt.order_by(Product.id).limit(BATCH)))
        if not ids:
            return
        after = ids[-1]
        batch = [pid for pid in ids if pid not in done][:limit]
        limit -= len(batch)
        if batch:
            yield batch


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
