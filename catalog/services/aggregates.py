"""Set-based SQL that refreshes the stored aggregates: product rating summaries and category stats.

Each refresh is one INSERT ... ON CONFLICT DO UPDATE over the rows in scope (the given ids, or all
when the ids are ``None``), recomputed from the rows beneath rather than patched incrementally, so it
is exact whatever happened before. Category stats read the rating summaries, so those come first.
The functions take a Session or Connection, execute in the caller's transaction and never commit: the
recompute jobs (``jobs.aggregates``) run them after writes, queued once the write has committed; the
seed refreshes everything after loading.
"""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.types import Integer

# ``:ids`` is NULL for "all rows". psycopg2 inlines parameters, so the planner sees the literal
# and folds ``NULL IS NULL OR ...`` away instead of planning for both cases.
_IDS = bindparam("ids", type_=ARRAY(Integer))

_PRODUCT_RATINGS = text(
    """
    INSERT INTO product_rating_summaries (product_id, review_count, average, histogram, computed_at)
    SELECT p.id,
           count(r.rating),
           coalesce(round(avg(r.rating), 2), 0),
           ARRAY[count(*) FILTER (WHERE r.rating = 1),
                 count(*) FILTER (WHERE r.rating = 2),
                 count(*) FILTER (WHERE r.rating = 3),
                 count(*) FILTER (WHERE r.rating = 4),
                 count(*) FILTER (WHERE r.rating = 5)]::integer[],
           now()
    FROM products p
    LEFT JOIN reviews r ON r.product_id = p.id
    WHERE CAST(:ids AS integer[]) IS NULL OR p.id = ANY(CAST(:ids AS integer[]))
    GROUP BY p.id
    ON CONFLICT (product_id) DO UPDATE SET
        review_count = EXCLUDED.review_count,
        average = EXCLUDED.average,
        histogram = EXCLUDED.histogram,
        computed_at = EXCLUDED.computed_at
    """
).bindparams(_IDS)

# Taken in its own statement before the refresh computes. Under READ COMMITTED each statement reads
# its own snapshot, and an upsert alone computes first and waits for the row after: a refresh that
# waited for another one to commit would then write over it with the reviews it read before (a
# review that both should count lost from the rating). Locked first, it computes after the wait.
# ORDER BY: refreshes of several rows lock them in one order, so they cannot deadlock.
_LOCK_PRODUCT_RATINGS = text(
    """
    SELECT count(*) FROM (
        SELECT 1 FROM product_rating_summaries
        WHERE CAST(:ids AS integer[]) IS NULL OR product_id = ANY(CAST(:ids AS integer[]))
        ORDER BY product_id
        FOR UPDATE
    ) AS locked
    """
).bindparams(_IDS)

# Products are first summed per their own category, then rolled up to each target over its subtree:
# sums, counts, minima and maxima compose, averages would not. Ratings come from the products'
# histograms (sum of k * count of k) rather than the reviews: the same numbers, from one row per
# product instead of one per review, which keeps a write's refresh cheap. UNION (not UNION ALL)
# in the tree walk stops it should a parent cycle ever get past the API's checks.
_CATEGORY_STATS = text(
    """
    WITH RECURSIVE subtree (root_id, category_id) AS (
        SELECT id, id FROM categories
        WHERE CAST(:ids AS integer[]) IS NULL OR id = ANY(CAST(:ids AS integer[]))
        UNION
        SELECT s.root_id, c.id FROM subtree s JOIN categories c ON c.parent_id = s.category_id
    ),
    sums AS (
        SELECT p.category_id, count(*) AS products, min(p.price) AS min_price, max(p.price) AS max_price,
               sum(p.price) AS price_total, sum(r.review_count) AS reviews,
               sum(r.histogram[1] + 2 * r.histogram[2] + 3 * r.histogram[3] + 4 * r.histogram[4]
                   + 5 * r.histogram[5]) AS rating_total
        FROM products p
        LEFT JOIN product_rating_summaries r ON r.product_id = p.id
        WHERE p.is_active AND p.category_id IN (SELECT category_id FROM subtree)
        GROUP BY p.category_id
    )
    INSERT INTO category_stats (category_id, product_count, min_price, max_price, avg_price,
                                average_rating, review_count, computed_at)
    SELECT t.root_id,
           coalesce(sum(s.products), 0),
           min(s.min_price),
           max(s.max_price),
           round(sum(s.price_total) / nullif(sum(s.products), 0), 2),
           round(sum(s.rating_total)::numeric / nullif(sum(s.reviews), 0), 2),
           coalesce(sum(s.reviews), 0),
           now()
    FROM subtree t
    LEFT JOIN sums s ON s.category_id = t.category_id
    GROUP BY t.root_id
    ON CONFLICT (category_id) DO UPDATE SET
        product_count = EXCLUDED.product_count,
        min_price = EXCLUDED.min_price,
        max_price = EXCLUDED.max_price,
        avg_price = EXCLUDED.avg_price,
        average_rating = EXCLUDED.average_rating,
        review_count = EXCLUDED.review_count,
        computed_at = EXCLUDED.computed_at
    """
).bindparams(_IDS)

_ANCESTORS = text(
    """
    WITH RECURSIVE up (id, parent_id) AS (
        SELECT id, parent_id FROM categories WHERE id = ANY(CAST(:ids AS integer[]))
        UNION
        SELECT c.id, c.parent_id FROM up JOIN categories c ON c.id = up.parent_id
    )
    SELECT id FROM up
    """
).bindparams(_IDS)


def recompute_product_ratings(db: Session | Connection, product_ids: list[int] | None = None) -> int:
    """Rewrite the rating summary of the given products (all when ``None``); returns rows written.

    Products without reviews get a row too (count 0, average 0, an all-zero histogram). Refreshes of
    one product take turns, each counting the reviews committed before it ran.
    """
    db.execute(_LOCK_PRODUCT_RATINGS, {"ids": product_ids})
    return db.execute(_PRODUCT_RATINGS, {"ids": product_ids}).rowcount


def recompute_category_stats(db: Session | Connection, category_ids: list[int] | None = None) -> int:
    """Rewrite the subtree stats of the given categories (all when ``None``); returns rows written.

    Only active products and their reviews count. A category whose subtree has none gets a row
    with zero counts and NULL prices and rating. Ratings are read from the product rating
    summaries, so refresh those first when reviews changed (``recompute_all`` does).
    """
    return db.execute(_CATEGORY_STATS, {"ids": category_ids}).rowcount


def categories_affected(db: Session | Connection, category_ids: list[int]) -> list[int]:
    """The given categories plus all their ancestors: whose stats change when theirs do."""
    rows = db.execute(_ANCESTORS, {"ids": list(category_ids)}).scalars()
    return sorted(set(category_ids).union(rows))


def product_counts(db: Session | Connection, category_ids: list[int] | None) -> dict[int, int]:
    """The stored product count of the given categories (all when ``None``): what the tree shows."""
    rows = db.execute(
        text(
            "SELECT category_id, product_count FROM category_stats "
            "WHERE CAST(:ids AS integer[]) IS NULL OR category_id = ANY(CAST(:ids AS integer[]))"
        ).bindparams(_IDS),
        {"ids": category_ids},
    )
    return dict(rows.all())


def recompute_all(db: Session | Connection) -> tuple[int, int]:
    """Rewrite every product's rating summary, then every category's stats; returns both row counts."""
    return recompute_product_ratings(db), recompute_category_stats(db)
