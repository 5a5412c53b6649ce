"""Concurrent writes to the same products, from real threads against the real database.

A write without ``If-Match`` is last-writer-wins and always succeeds; one with a stale ``If-Match``
is a 412, never a 409; a review never conflicts with a change to its product.
"""

from __future__ import annotations

import random
import secrets
import threading
from collections import Counter
from decimal import ROUND_HALF_UP, Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.models import Product
from tests.factories import make_category, make_products

pytestmark = pytest.mark.system

HOT_PRODUCTS = 8
ROUNDS = 12
WRITER_FIELDS = ("price", "stock", "description")


def value_for(field: str, writer_round: int):
    return {
        "price": f"{100 + writer_round}.25",
        "stock": 1000 + writer_round,  # never the stock a test product starts with
        "description": f"round {writer_round} {secrets.token_hex(2)}",
    }[field]


def run_together(workers: list) -> None:
    """Start every worker at once (a barrier), wait for all, and re-raise the first failure."""
    barrier, failures = threading.Barrier(len(workers)), []

    def run(work):
        barrier.wait()
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(work,)) for work in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if failures:
        raise failures[0]


@pytest.fixture
def app(make_app):
    # Unlimited writes: this is about concurrency, not budgets.
    return make_app(rate_limits_enabled=False)


@pytest.fixture
def hot(engine):
    return [product.id for product in make_products(engine, make_category(engine), HOT_PRODUCTS)]


def test_blind_writes_all_succeed_and_the_last_writer_of_each_field_wins(app, engine, auth, hot):
    statuses: Counter = Counter()
    seen: dict[tuple[str, int], list[int]] = {}  # (field, product) -> versions that writer saw
    last: dict[tuple[str, int], object] = {}

    def writer(field: str):
        client = app.test_client()
        for writer_round in range(ROUNDS):
            for product_id in random.sample(hot, len(hot)):
                value = value_for(field, writer_round)
                response = client.patch(f"/v1/products/{product_id}", json={field: value}, headers=auth)
                statuses[response.status_code] += 1
                if response.status_code == 200:
                    seen.setdefault((field, product_id), []).append(response.get_json()["version"])
                    last[(field, product_id)] = value

    run_together([lambda field=field: writer(field) for field in WRITER_FIELDS])

    assert statuses == {200: len(WRITER_FIELDS) * ROUNDS * HOT_PRODUCTS}
    for versions in seen.values():
        assert versions == sorted(set(versions))  # strictly increasing, as each writer saw them
    with Session(engine) as db:
        rows = {row.id: row for row in db.scalars(select(Product).where(Product.id.in_(hot)))}
    for product_id in hot:
        row = rows[product_id]
        assert row.price == Decimal(str(last[("price", product_id)]))
        assert row.stock == last[("stock", product_id)]
        assert row.description == last[("description", product_id)]
        assert row.version == 1 + len(WRITER_FIELDS) * ROUNDS  # every write counted once


def test_a_stale_if_match_is_412_never_409(app, engine, auth, hot):
    statuses: Counter = Counter()

    def writer(field: str):
        client = app.test_client()
        for writer_round in range(ROUNDS):
            for product_id in random.sample(hot, len(hot)):
                etag = client.get(f"/v1/products/{product_id}").headers["ETag"]
                body = {field: value_for(field, writer_round)}
                response = client.patch(
                    f"/v1/products/{product_id}", json=body, headers={**auth, "If-Match": etag}
                )
                statuses[response.status_code] += 1

    run_together([lambda field=field: writer(field) for field in WRITER_FIELDS])

    assert set(statuses) <= {200, 412}, statuses
    with Session(engine) as db:
        versions = db.scalars(select(Product.version).where(Product.id.in_(hot))).all()
    assert sum(versions) - len(hot) == statuses[200]  # every 200 is one version, no more


def test_reviews_and_product_changes_never_conflict(app, engine, auth, hot):
    statuses: Counter = Counter()
    ratings: list[int] = []
    product_id = hot[0]

    def reviewer():
        client = app.test_client()
        for _ in range(ROUNDS * 2):
            rating = random.randint(1, 5)
            body = {"rating": rating, "title": "t", "body": "b", "author": "a"}
            response = client.post(f"/v1/products/{product_id}/reviews", json=body, headers=auth)
            statuses[response.status_code] += 1
            if response.status_code == 201:
                ratings.append(rating)

    def patcher():
        client = app.test_client()
        for writer_round in range(ROUNDS * 2):
            response = client.patch(f"/v1/products/{product_id}", json={"stock": writer_round}, headers=auth)
            statuses[response.status_code] += 1

    run_together([reviewer, reviewer, patcher])

    assert statuses == {201: ROUNDS * 4, 200: ROUNDS * 2}
    rating = app.test_client().get(f"/v1/products/{product_id}").get_json()["rating"]
    # PostgreSQL rounds half away from zero; Python's round() would round 3.125 to 3.12.
    average = (Decimal(sum(ratings)) / len(ratings)).quantize(Decimal("0.01"), ROUND_HALF_UP)
    assert rating == {"count": len(ratings), "average": float(average)}
