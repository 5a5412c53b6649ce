"""Aggregate recompute jobs: rating summaries and category stats, with set-based SQL.

Each job recomputes from the rows beneath (so running it twice, or again after
a worker died mid-run, leaves the same state), then records what it changed so
the cache entries showing those aggregates are invalidated after its commit,
like any write.
"""

from __future__ import annotations

from rq import get_current_job
from sqlalchemy import select

from api.models import Category, Product, ProductRatingSummary
from api.services import aggregates
from api.services.effects import AGGREGATES, Change, record

from . import context
from .queues import release_pending


def recompute_product(product_id: int) -> dict:
    """A product's rating summary, then the stats of its category and that category's ancestors."""
    _started()
    with context.session() as db:
        category_id = db.scalar(select(Product.category_id).where(Product.id == product_id))
        if category_id is None:
            return {"product_id": product_id, "skipped": "product no longer exists"}
        aggregates.recompute_product_ratings(db, [product_id])
        categories = aggregates.categories_affected(db, [category_id])
        aggregates.recompute_category_stats(db, categories)
        record(db, Change(AGGREGATES, (product_id,), tuple(categories)))
        db.commit()
    return {"product_id": product_id, "categories": categories}


def recompute_categories(category_ids: list[int]) -> dict:
    """The stats of these categories and their ancestors."""
    _started()
    with context.session() as db:
        categories = aggregates.categories_affected(db, category_ids)
        rows = aggregates.recompute_category_stats(db, categories)
        record(db, Change(AGGREGATES, (), tuple(categories)))
        db.commit()
    return {"categories": categories, "rows": rows}


def recompute_all() -> dict:
    """Every rating summary and every category's stats: the periodic backstop for anything missed."""
    _started()
    with context.session() as db:
        before = _ratings(db)
        aggregates.recompute_all(db)
        changed = [pid for pid, rating in _ratings(db).items() if before.get(pid) != rating]
        categories = tuple(db.scalars(select(Category.id)))
        # Only products whose rating moved lose their cache entry; every category entry is cheap to drop.
        record(db, Change(AGGREGATES, tuple(changed), categories))
        db.commit()
    return {"products_changed": len(changed), "categories": len(categories)}


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
