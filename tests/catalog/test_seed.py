"""The demo catalog seed: deterministic data, refusal and reset, integrity, and the CLI command."""

from __future__ import annotations

import re
from decimal import Decimal

import psycopg2
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from api import create_app
from catalog.models import Category, Product, ProductRatingSummary, Review
from catalog.seed import BASE_DATE, CatalogGenerator, CatalogNotEmpty, seed_catalog
from tests.factories import make_category

PRODUCTS, REVIEWS = 300, 2000

# md5 of each table's rows as text, in text order; computed_at (when the seed ran) is left out.
FINGERPRINTS = {
    table: text(f"SELECT md5(string_agg(d::text, E'\\n' ORDER BY d::text)) FROM ({query}) d")  # noqa: S608
    for table, query in {
        "categories": "SELECT * FROM categories",
        "products": "SELECT * FROM products",
        "reviews": "SELECT * FROM reviews",
        "product_rating_summaries": "SELECT product_id, review_count, average, histogram"
        " FROM product_rating_summaries",
        "category_stats": "SELECT category_id, product_count, min_price, max_price, avg_price,"
        " average_rating, review_count FROM category_stats",
    }.items()
}
COUNTS = text(
    "SELECT (SELECT count(*) FROM categories) AS categories, (SELECT count(*) FROM products) AS products,"
    " (SELECT count(*) FROM reviews) AS reviews,"
    " (SELECT count(*) FROM product_rating_summaries) AS product_rating_summaries,"
    " (SELECT count(*) FROM category_stats) AS category_stats"
)


def fingerprint(engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {table: conn.execute(query).scalar() for table, query in FINGERPRINTS.items()}


def counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(COUNTS).mappings().one())


def seed(engine, seed: int = 42, **options):
    return seed_catalog(engine, products=PRODUCTS, reviews=REVIEWS, seed=seed, **options)


def test_the_same_seed_writes_identical_data_and_another_seed_does_not(engine):
    seed(engine)
    first = fingerprint(engine)
    seed(engine, reset=True)
    again = fingerprint(engine)
    seed(engine, seed=43, reset=True)
    other = fingerprint(engine)

    assert all(first.values())
    assert again == first
    # The category tree is fixed vocabulary; what is drawn from the seed must differ.
    assert all(other[table] != first[table] for table in ("products", "reviews", "product_rating_summaries"))


def test_the_seed_writes_the_requested_sizes(engine):
    result = seed(engine)

    assert (result.products, result.reviews) == (PRODUCTS, REVIEWS)
    assert counts(engine) == {
        "categories": result.categories,
        "products": PRODUCTS,
        "reviews": REVIEWS,
        "product_rating_summaries": PRODUCTS,
        "category_stats": result.categories,
    }


def test_a_catalog_with_data_is_refused_and_left_alone(engine):
    category = make_category(engine)

    with pytest.raises(CatalogNotEmpty):
        seed(engine)

    with Session(engine) as db:
        assert db.query(Category).one().id == category.id
        assert db.query(Product).count() == 0


def test_reset_replaces_the_catalog_and_restarts_ids(engine):
    make_category(engine)
    seed(engine, reset=True)

    with engine.connect() as conn:
        assert conn.execute(text("SELECT min(id), count(*) FROM products")).one() == (1, PRODUCTS)
        assert conn.execute(text("SELECT min(id), max(id) FROM reviews")).one() == (1, REVIEWS)
        assert conn.execute(text("SELECT count(*) FROM categories WHERE slug LIKE 'cat-%'")).scalar() == 0


def test_a_failure_midway_leaves_nothing_behind(engine, monkeypatch):
    original = CatalogGenerator.review_rows

    def breaks_after_one_batch(self):
        batches = original(self)
        yield next(batches)
        raise RuntimeError("generator broke")

    monkeypatch.setattr(CatalogGenerator, "review_rows", breaks_after_one_batch)

    # psycopg2 ends the COPY and reports the read() error as its own.
    with pytest.raises(psycopg2.Error, match="generator broke"):
        seed(engine)

    assert set(counts(engine).values()) == {0}


def test_an_empty_catalog_is_just_the_categories(engine):
    result = seed_catalog(engine, products=0, reviews=0, seed=1)

    assert counts(engine) == {
        "categories": result.categories,
        "products": 0,
        "reviews": 0,
        "product_rating_summaries": 0,
        "category_stats": result.categories,
    }


def test_the_catalog_has_two_levels_of_categories(engine):
    seed(engine)

    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, slug, parent_id FROM categories")).all()
    top = {row.id for row in rows if row.parent_id is None}
    children = [row for row in rows if row.parent_id is not None]
    assert len(top) >= 8 and len(children) >= 4 * len(top)
    assert all(row.parent_id in top for row in children)
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", row.slug) for row in rows)


def test_products_look_like_a_store(engine):
    seed(engine)

    with engine.connect() as conn:
        products = conn.execute(text("SELECT * FROM products")).mappings().all()
    assert all(re.fullmatch(r"SHL-\d{7}", p["sku"]) for p in products)
    assert all(p["slug"].endswith(p["sku"].lower()) for p in products)
    assert {p["currency"] for p in products} == {"USD"}
    assert all(p["price"] > 0 and str(p["price"])[-2:] in ("99", "49") for p in products)
    assert 0.02 < sum(p["stock"] == 0 for p in products) / len(products) < 0.16
    assert all(p["attributes"] and p["description"] for p in products)
    assert all(p["created_at"] < BASE_DATE and p["updated_at"] >= p["created_at"] for p in products)
    assert len({p["brand"] for p in products}) > 30
    prices = sorted(p["price"] for p in products)
    assert prices[-1] > 10 * prices[len(prices) // 2]


def test_reviews_are_skewed_and_after_their_product(engine):
    seed(engine)

    with engine.connect() as conn:
        per_product = conn.execute(text("SELECT review_count FROM product_rating_summaries")).scalars().all()
        ratings = dict(conn.execute(text("SELECT rating, count(*) FROM reviews GROUP BY rating")).all())
        too_early = conn.execute(
            text(
                "SELECT count(*) FROM reviews r JOIN products p ON p.id = r.product_id"
                " WHERE r.created_at <= p.created_at OR r.created_at >= :base"
            ),
            {"base": BASE_DATE},
        ).scalar()
    assert too_early == 0
    assert sum(n == 0 for n in per_product) > len(per_product) // 5
    assert max(per_product) > 10 * REVIEWS / PRODUCTS
    # J-shaped: fives lead, ones outnumber twos.
    assert ratings[5] == max(ratings.values()) and ratings[1] > ratings[2]


def test_every_product_has_a_correct_rating_summary(engine):
    seed(engine)

    with engine.connect() as conn:
        mismatched = conn.execute(
            text(
                """
                SELECT count(*) FROM products p
                LEFT JOIN product_rating_summaries s ON s.product_id = p.id
                LEFT JOIN (SELECT product_id, count(*) AS n, round(avg(rating), 2) AS average
                           FROM reviews GROUP BY product_id) r ON r.product_id = p.id
                WHERE s.product_id IS NULL OR s.review_count <> coalesce(r.n, 0)
                   OR s.average <> coalesce(r.average, 0)
                """
            )
        ).scalar()
    assert mismatched == 0


def test_inserts_after_seeding_get_fresh_ids(engine):
    seed(engine)

    with Session(engine) as db:
        category = Category(slug="after-seed", name="After seed")
        db.add(category)
        db.flush()
        product = Product(
            sku="AFTER-1",
            name="After",
            slug="after-1",
            brand="B",
            price=Decimal("1.00"),
            currency="USD",
            category_id=category.id,
            rating=ProductRatingSummary(),
        )
        db.add(product)
        db.flush()
        review = Review(product_id=product.id, rating=5, title="t", author="a")
        db.add(review)
        db.commit()
        assert product.id == PRODUCTS + 1
        assert review.id == REVIEWS + 1
        assert category.id > 1


def test_cli_seeds_with_a_progress_bar_on_stderr(runner, engine):
    result = runner.invoke(
        args=["seed", "--products", str(PRODUCTS), "--reviews", str(REVIEWS), "--seed", "7"]
    )

    assert result.exit_code == 0, result.output
    assert f"{PRODUCTS} products" in result.stdout
    assert "reviews" in result.stderr
    assert counts(engine)["reviews"] == REVIEWS


def test_cli_refuses_a_catalog_with_data_and_names_reset(runner, engine):
    make_category(engine)

    result = runner.invoke(args=["seed", "--products", "10"])

    assert result.exit_code != 0
    assert "--reset" in result.stderr
    assert counts(engine)["products"] == 0


def test_cli_reset_replaces_the_catalog(runner, engine):
    make_category(engine)

    result = runner.invoke(args=["seed", "--products", "20", "--reviews", "50", "--reset", "--yes"])

    assert result.exit_code == 0, result.output
    assert counts(engine)["products"] == 20


def test_cli_if_empty_seeds_once_then_exits_quietly(runner, engine):
    first = runner.invoke(args=["seed", "--products", "20", "--reviews", "50", "--if-empty"])
    fingerprint_after_first = fingerprint(engine)
    second = runner.invoke(args=["seed", "--products", "30", "--if-empty"])

    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert "already has data" in second.output
    assert fingerprint(engine) == fingerprint_after_first


def test_cli_rejects_reset_with_if_empty(runner):
    result = runner.invoke(args=["seed", "--reset", "--if-empty"])

    assert result.exit_code == 2


def test_cli_defaults_to_the_demo_size_and_ten_reviews_each(settings, redis_client, engine):
    app = create_app(settings.replace(demo_products=25))
    try:
        result = app.test_cli_runner().invoke(args=["seed"])
    finally:
        app.extensions["shelf.engine"].dispose()

    assert result.exit_code == 0, result.output
    assert counts(engine)["products"] == 25
    assert counts(engine)["reviews"] == 250
