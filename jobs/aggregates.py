"""Aggregate recompute jobs: rating summaries and category stats, with set-based SQL.

Each job recomputes from the rows beneath (so running it twice, or again after
a worker died mid-run, leaves the same state), then records what it changed so
the cache entries showing those aggregates are invalidated after its commit,
like any write.
"""

from __future__ import annotations

from dataclasses import replace

from rq import get_current_job
from sqlalchemy import select

from catalog.list_deps import listing
from catalog.models import Category, Product, ProductRatingSummary
from catalog.queues import release_pending
from catalog.services import aggregates
from catalog.services.effects import AGGREGATES, Change, record

from . import context


def recompute_product(product_id: int) -> dict:
    """A product's rating summary, then the stats of its category and that category's ancestors."""
    _started()
    with context.session() as db:
        product = db.get(Product, product_id)
        if product is None:
            return {"product_id": product_id, "skipped": "product no longer exists"}
        before = listing(product)
        aggregates.recompute_product_ratings(db, [product_id])
        db.refresh(product.rating)
        categories = aggregates.categories_affected(db, [product.category_id])
        _, counts_changed = _recompute_stats(db, categories)
        moved = ((before, listing(product)),)
        record(
            db,
            Change(
                AGGREGATES, (product_id,), tuple(categories), listings=moved, counts_changed=counts_changed
            ),
        )
        db.commit()
    return {"product_id": product_id, "categories": categories}


def recompute_categories(category_ids: list[int]) -> dict:
    """The stats of these categories and their ancestors."""
    _started()
    with context.session() as db:
        categories = aggregates.categories_affected(db, category_ids)
        rows, counts_changed = _recompute_stats(db, categories)
        record(db, Change(AGGREGATES, (), tuple(categories), counts_changed=counts_changed))
        db.commit()
    return {"categories": categories, "rows": rows}


def recompute_all() -> dict:
    """Every rating summary and every category's stats: the periodic backstop for anything missed."""
    _started()
    with context.session() as db:
        before, counts = _ratings(db), aggregates.product_counts(db, None)
        aggregates.recompute_all(db)
        changed = [pid for pid, rating in _ratings(db).items() if before.get(pid) != rating]
        categories = tuple(db.scalars(select(Category.id)))
        counts_changed = aggregates.product_counts(db, None) != counts
        # Only products whose rating moved lose their cache entry; every category entry is cheap to drop.
        moved = _rating_moves(db, changed, before)
        record(
            db, Change(AGGREGATES, tuple(changed), categories, listings=moved, counts_changed=counts_changed)
        )
        db.commit()
    return {"products_changed": len(changed), "categories": len(categories)}


def _recompute_stats(db, categories: list[int]) -> tuple[int, bool]:
    """Recompute the categories' stats: rows written, and whether a product count (what the tree
    shows) moved."""
    before = aggregates.product_counts(db, categories)
    rows = aggregates.recompute_category_stats(db, categories)
    return rows, aggregates.product_counts(db, categories) != before


def _rating_moves(db, product_ids: list[int], before: dict[int, tuple]) -> tuple:
    """Listings before and after for products whose rating the recompute moved."""
    moves = []
    for product in db.scalars(select(Product).where(Product.id.in_(product_ids))).unique():
        after = listing(product)
        if after is not None and product.id in before:
            moves.append((replace(after, rating=before[product.id][1]), after))
    return tuple(moves)


def _ratings(db) -> dict[int, tuple]:
    columns = (
        ProductRatingSummary.product_id,
        ProductRatingSummary.review_count,
        ProductRatingSummary.average,
    )
    return {pid: (count, average) for pid, count, average in db.execute(select(*columns))}


def _started() -> None:
    job = get_current_job()
    if job is not None:
        release_pending(job.connection, job)
