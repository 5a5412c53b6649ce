"""The aggregate SQL against numbers computed in Python from the same randomly generated rows."""

from __future__ import annotations

import random
import secrets
import threading
import time
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

import pytest
from sqlalchemy import text

from catalog.services.aggregates import (
    categories_affected,
    recompute_all,
    recompute_category_stats,
    recompute_product_ratings,
)

CENT = Decimal("0.01")


@dataclass
class Catalog:
    """What was inserted: category parents, products and each product's review ratings."""

    parents: dict[int, int | None] = field(default_factory=dict)
    products: dict[int, dict] = field(default_factory=dict)
    ratings: dict[int, list[int]] = field(default_factory=dict)

    def subtree(self, category_id: int) -> set[int]:
        found = {category_id}
        while True:
            more = {c for c, parent in self.parents.items() if parent in found} - found
            if not more:
                return found
            found |= more

    def parent_with_children(self) -> int:
        return next(c for c in self.parents if any(p == c for p in self.parents.values()))

    def leaves(self) -> list[int]:
        return [c for c in self.parents if c not in self.parents.values()]


def add_category(conn, catalog: Catalog, parent_id: int | None = None) -> int:
    slug = f"cat-{secrets.token_hex(4)}"
    category_id = conn.execute(
        text("INSERT INTO categories (slug, name, parent_id) VALUES (:slug, :slug, :parent) RETURNING id"),
        {"slug": slug, "parent": parent_id},
    ).scalar_one()
    catalog.parents[category_id] = parent_id
    return category_id


def add_product(
    conn, catalog: Catalog, category_id: int, *, active: bool, reviews: int, price: Decimal | None = None
) -> int:
    sku = f"sku-{secrets.token_hex(5)}"
    price = Decimal(random.randint(0, 250_000)) / 100 if price is None else price
    product_id = conn.execute(
        text(
            "INSERT INTO products (sku, name, slug, brand, price, currency, category_id, is_active)"
            " VALUES (:sku, :sku, :sku, 'Brand', :price, 'USD', :category, :active) RETURNING id"
        ),
        {"sku": sku, "price": price, "category": category_id, "active": active},
    ).scalar_one()
    catalog.products[product_id] = {"category_id": category_id, "price": price, "active": active}
    ratings = [random.randint(1, 5) for _ in range(reviews)]
    catalog.ratings[product_id] = ratings
    if ratings:
        conn.execute(
            text(
                "INSERT INTO reviews (product_id, rating, title, author) VALUES (:product, :rating, 't', 'a')"
            ),
            [{"product": product_id, "rating": rating} for rating in ratings],
        )
    return product_id


@pytest.fixture
def catalog(engine) -> Catalog:
    """Two to four parents with one to four children each, one empty leaf, random products and reviews.

    Parents hold products of their own too; every child holds at least one.
    """
    catalog = Catalog()
    with engine.begin() as conn:
        for _ in range(random.randint(2, 4)):
            parent = add_category(conn, catalog)
            children = [add_category(conn, catalog, parent) for _ in range(random.randint(1, 4))]
            for category_id in [parent, *children]:
                for _ in range(random.randint(0 if category_id == parent else 1, 5)):
                    add_product(
                        conn,
                        catalog,
                        category_id,
                        active=random.random() < 0.8,
                        reviews=random.choice([0, 0, 1, random.randint(2, 12)]),
                    )
        add_category(conn, catalog, parent)
    return catalog


def average(values, *, empty):
    if not values:
        return empty
    return (Decimal(sum(values)) / len(values)).quantize(CENT, rounding=ROUND_HALF_UP)


def expected_summary(catalog: Catalog, product_id: int) -> tuple:
    ratings = catalog.ratings[product_id]
    histogram = [ratings.count(k) for k in range(1, 6)]
    return (len(ratings), average(ratings, empty=Decimal("0.00")), histogram)


def expected_stats(catalog: Catalog, category_id: int) -> tuple:
    subtree = catalog.subtree(category_id)
    products = [pid for pid, p in catalog.products.items() if p["active"] and p["category_id"] in subtree]
    prices = [catalog.products[pid]["price"] for pid in products]
    ratings = [rating for pid in products for rating in catalog.ratings[pid]]
    return (
        len(products),
        min(prices, default=None),
        max(prices, default=None),
        average(prices, empty=None),
        average(ratings, empty=None),
        len(ratings),
    )


def summaries(engine) -> dict[int, tuple]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT product_id, review_count, average, histogram, computed_at"
                " FROM product_rating_summaries"
            )
        )
        return {row[0]: tuple(row[1:]) for row in rows}


def stats(engine) -> dict[int, tuple]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT category_id, product_count, min_price, max_price, avg_price, average_rating,"
                " review_count, computed_at FROM category_stats"
            )
        )
        return {row[0]: tuple(row[1:]) for row in rows}


def test_product_ratings_match_python_for_every_product(engine, catalog):
    with engine.begin() as conn:
        written = recompute_product_ratings(conn)

    assert written == len(catalog.products)
    found = summaries(engine)
    assert {pid: row[:3] for pid, row in found.items()} == {
        pid: expected_summary(catalog, pid) for pid in catalog.products
    }


def test_products_without_reviews_get_a_zero_summary(engine, catalog):
    category_id = next(iter(catalog.parents))
    with engine.begin() as conn:
        product_id = add_product(conn, catalog, category_id, active=True, reviews=0)
        recompute_product_ratings(conn, [product_id])

    assert summaries(engine)[product_id][:3] == (0, Decimal("0.00"), [0, 0, 0, 0, 0])


def test_category_stats_match_python_over_each_subtree(engine, catalog):
    with engine.begin() as conn:
        ratings_written, stats_written = recompute_all(conn)

    assert (ratings_written, stats_written) == (len(catalog.products), len(catalog.parents))
    found = {cid: row[:6] for cid, row in stats(engine).items()}
    assert found == {cid: expected_stats(catalog, cid) for cid in catalog.parents}


def test_a_parent_counts_its_childrens_products_and_reviews(engine, catalog):
    parent = catalog.parent_with_children()
    children = [c for c, p in catalog.parents.items() if p == parent]
    with engine.begin() as conn:
        add_product(conn, catalog, children[0], active=True, reviews=random.randint(1, 6))
        recompute_all(conn)

    found = stats(engine)
    own = [pid for pid, p in catalog.products.items() if p["active"] and p["category_id"] == parent]
    assert found[parent][0] == len(own) + sum(found[c][0] for c in children)
    own_reviews = sum(len(catalog.ratings[pid]) for pid in own)
    assert found[parent][5] == own_reviews + sum(found[c][5] for c in children)
    assert found[parent][:6] == expected_stats(catalog, parent)


def test_inactive_products_are_left_out(engine, catalog):
    leaf = catalog.leaves()[0]
    parent = catalog.parents[leaf]
    top_price = Decimal("9999.99")  # above every random price
    with engine.begin() as conn:
        hidden = [
            add_product(conn, catalog, leaf, active=False, reviews=3, price=top_price) for _ in range(2)
        ]
        recompute_all(conn)
    before = stats(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE products SET is_active = true WHERE id = ANY(:ids)"), {"ids": hidden})
        recompute_all(conn)
    after = stats(engine)

    for category_id in (leaf, parent):
        assert before[category_id][:6] == expected_stats(catalog, category_id)
        assert before[category_id][2] != top_price
        assert after[category_id][0] == before[category_id][0] + 2
        assert after[category_id][2] == top_price
        assert after[category_id][5] == before[category_id][5] + 6


def test_a_subtree_of_only_inactive_products_gets_zeros_and_nulls(engine, catalog):
    with engine.begin() as conn:
        leaf = add_category(conn, catalog, catalog.parent_with_children())
        add_product(conn, catalog, leaf, active=False, reviews=4)
        recompute_category_stats(conn, [leaf])

    assert stats(engine)[leaf][:6] == (0, None, None, None, None, 0)


def test_only_the_given_ids_are_touched(engine, catalog):
    with engine.begin() as conn:
        recompute_all(conn)
    ratings_before, stats_before = summaries(engine), stats(engine)
    parent = catalog.parent_with_children()
    child = next(c for c, p in catalog.parents.items() if p == parent)
    with engine.begin() as conn:
        changed = add_product(conn, catalog, child, active=True, reviews=random.randint(1, 9))
        other = next(pid for pid, p in catalog.products.items() if pid != changed)
        conn.execute(
            text("INSERT INTO reviews (product_id, rating, title, author) VALUES (:p, 5, 't', 'a')"),
            {"p": other},
        )
        assert recompute_product_ratings(conn, [changed]) == 1
        assert recompute_category_stats(conn, [child]) == 1

    ratings_after, stats_after = summaries(engine), stats(engine)
    assert ratings_after[changed][:3] == expected_summary(catalog, changed)
    assert {pid: row for pid, row in ratings_after.items() if pid != changed} == ratings_before
    assert stats_after[child][:6] == expected_stats(catalog, child)
    del stats_after[child], stats_before[child]
    assert stats_after == stats_before


def test_an_empty_id_list_writes_nothing(engine, catalog):
    with engine.begin() as conn:
        assert recompute_product_ratings(conn, []) == 0
        assert recompute_category_stats(conn, []) == 0

    assert summaries(engine) == {} and stats(engine) == {}


def test_categories_affected_adds_every_ancestor(engine, catalog):
    parent = catalog.parent_with_children()
    child = next(c for c, p in catalog.parents.items() if p == parent)
    with engine.begin() as conn:
        grandchild = add_category(conn, catalog, child)
        roots = [c for c, p in catalog.parents.items() if p is None]

        assert categories_affected(conn, [grandchild]) == sorted([grandchild, child, parent])
        assert categories_affected(conn, [child, roots[-1]]) == sorted({child, parent, roots[-1]})
        assert categories_affected(conn, [parent]) == [parent]
        assert categories_affected(conn, []) == []


def waiting_for_a_lock(engine) -> bool:
    with engine.connect() as conn:
        query = (
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        return conn.scalar(text(query)) > 0


def test_a_rating_refresh_that_waited_for_another_counts_the_reviews_committed_meanwhile(engine, catalog):
    """Two refreshes of one product at once (a review's job and the periodic one, say): the one that
    waits must not write over the other's result with the reviews it read before waiting."""
    product_id = next(iter(catalog.products))
    with engine.begin() as conn:
        recompute_product_ratings(conn, [product_id])

    def refresh():
        with engine.begin() as conn:
            recompute_product_ratings(conn, [product_id])

    with engine.connect() as first:
        recompute_product_ratings(first, [product_id])  # holds the row until it commits
        second = threading.Thread(target=refresh)
        second.start()
        deadline = time.monotonic() + 30
        while not waiting_for_a_lock(engine) and time.monotonic() < deadline:
            time.sleep(0.01)
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO reviews (product_id, rating, title, author) VALUES (:id, 5, 't', 'a')"),
                {"id": product_id},
            )
        catalog.ratings[product_id].append(5)
        recompute_product_ratings(first, [product_id])
        first.commit()
    second.join(timeout=30)

    assert summaries(engine)[product_id][:3] == expected_summary(catalog, product_id)
