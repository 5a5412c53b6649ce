"""The list-page oracle: after every write, every cached list answer equals the uncached one.

Random sequences (hypothesis) of writes through the API (price, stock, name, brand, description,
category move, (de)activation, create, delete, review, a category moved to another parent)
interleaved with random list queries over every filter and sort, walked page by page through
their cursors. Each page is read from an app with the cache on (near cache included) and from
one with it off, over the same database; they must be equal, byte for byte. The catalog carries
over from one example to the next, so later examples start from states earlier ones made.

``SHELF_ORACLE_EXAMPLES`` (default 12, 25 steps each: 300 steps, about a minute) sets the length
of the run; a longer one for local use:
``SHELF_ORACLE_EXAMPLES=200 make test ARGS="tests/catalog/test_list_oracle.py"`` (5,000 steps).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from catalog.schemas import SORTS
from tests.factories import make_category, make_product

pytestmark = pytest.mark.system

EXAMPLES = int(os.environ.get("SHELF_ORACLE_EXAMPLES", "12"))
STEPS = 25
MAX_PAGES = 4
BRANDS = ("Acme", "Globex", "Initech")
PRICES = st.sampled_from(
    ["0.00", "0.99", "1.00", "9.99", "10.00", "10.50", "99.00", "250.00", "999.99", "12000.00"]
)


@pytest.fixture
def catalog(engine):
    top, other, leaf = (make_category(engine, slug=slug) for slug in ("home", "garden", "tools"))
    child = make_category(engine, slug="kitchen", parent=top)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for index in range(14):
        make_product(
            engine,
            (top, child, other, leaf)[index % 4],
            name=f"{'ABCDEFG'[index % 7]}item {index}",
            brand=BRANDS[index % 3],
            price=Decimal(["0.99", "10.00", "10.00", "99.00", "250.00", "5.25", "12000.00"][index % 7]),
            stock=index % 3,
            description="red kettle" if index % 2 else "blue chair",
            created_at=start + timedelta(hours=index * 7),
        )
    return ["home", "garden", "tools", "kitchen"]


@pytest.fixture
def apps(make_app):
    cached = make_app(rate_limits_enabled=False)
    uncached = make_app(rate_limits_enabled=False, cache_enabled=False)
    return cached.test_client(), uncached.test_client()


def queries(slugs: list[str]):
    return st.fixed_dictionaries(
        {},
        optional={
            "category": st.sampled_from(slugs),
            "brand": st.sampled_from([b.lower() for b in BRANDS]),
            "min_price": PRICES,
            "max_price": PRICES,
            "in_stock": st.sampled_from(["true", "false"]),
            "q": st.sampled_from(["red", "kettle", "chair"]),
        },
    ).flatmap(
        lambda base: st.fixed_dictionaries(
            {"sort": st.sampled_from(SORTS), "limit": st.sampled_from([1, 2, 3, 5])}
        ).map(lambda extra: {**base, **extra})
    )


def product_changes(slugs: list[str]):
    return st.one_of(
        st.fixed_dictionaries({"price": PRICES}),
        st.fixed_dictionaries({"stock": st.integers(0, 3)}),
        st.fixed_dictionaries({"name": st.sampled_from(["Aardvark", "item", "Zebra", "mid"])}),
        st.fixed_dictionaries({"brand": st.sampled_from(BRANDS)}),
        st.fixed_dictionaries({"description": st.sampled_from(["red", "plain", "kettle chair"])}),
        st.fixed_dictionaries({"category": st.sampled_from(slugs)}),
        st.fixed_dictionaries({"is_active": st.booleans()}),
        st.fixed_dictionaries(
            {"price": PRICES, "stock": st.integers(0, 3), "category": st.sampled_from(slugs)}
        ),
    )


def read_pages(client, query: dict) -> list[tuple[int, bytes]]:
    answers, params = [], dict(query)
    for _ in range(MAX_PAGES):
        response = client.get("/v1/products?" + urlencode(params))
        if response.status_code != 200:  # a problem: the same but for its request id
            answers.append((response.status_code, {**response.get_json(), "request_id": None}))
            break
        answers.append((response.status_code, response.data))
        cursor = response.get_json()["next_cursor"]
        if not cursor:
            break
        params = {**query, "cursor": cursor}
    return answers


def compare(apps, query: dict) -> None:
    cached, uncached = apps
    for page, (got, want) in enumerate(
        zip(read_pages(cached, query), read_pages(uncached, query), strict=False)
    ):
        assert got == want, f"page {page + 1} of {query} differs from the uncached answer"


def product_ids(client) -> list[int]:
    ids, cursor = [], None
    while True:
        response = client.get(
            "/v1/products?" + urlencode({"limit": 100, **({"cursor": cursor} if cursor else {})})
        )
        ids += [item["id"] for item in response.get_json()["items"]]
        cursor = response.get_json()["next_cursor"]
        if not cursor:
            return ids


def write(data, apps, auth, slugs: list[str], engine) -> str:
    cached, uncached = apps
    kind = data.draw(
        st.sampled_from(["patch"] * 6 + ["create", "delete", "review", "review", "move category"])
    )
    known = _all_product_ids(engine)
    if kind == "create":
        price = data.draw(PRICES)
        body = {"sku": f"SKU-{data.draw(st.integers(0, 10**9))}", "name": "New thing", "brand": "Acme"}
        body |= {"price": price, "category": data.draw(st.sampled_from(slugs)), "stock": 1}
        response = cached.post("/v1/products", json=body, headers=auth)
        return f"create {body} -> {response.status_code}"
    if kind == "move category":
        parent = data.draw(st.sampled_from([None, "home", "garden"]))
        response = cached.patch("/v1/categories/tools", json={"parent": parent}, headers=auth)
        return f"move tools under {parent} -> {response.status_code}"
    if not known:
        return "no product to write"
    product_id = known[data.draw(st.integers(0, 10**6)) % len(known)]  # drawn the same way whatever exists
    if kind == "delete":
        return (
            f"delete {product_id} -> {cached.delete(f'/v1/products/{product_id}', headers=auth).status_code}"
        )
    if kind == "review":
        review = {"rating": data.draw(st.integers(1, 5)), "title": "t", "author": "a"}
        response = cached.post(f"/v1/products/{product_id}/reviews", json=review, headers=auth)
        return f"review {product_id} {review['rating']} -> {response.status_code}"
    changes = data.draw(product_changes(slugs))
    response = cached.patch(f"/v1/products/{product_id}", json=changes, headers=auth)
    assert response.status_code == 200, response.get_json()
    return f"patch {product_id} {changes}"


def _all_product_ids(engine) -> list[int]:
    with engine.connect() as conn:
        return [row[0] for row in conn.exec_driver_sql("SELECT id FROM products ORDER BY id")]


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_cached_list_pages_equal_uncached_after_every_write(data, catalog, apps, auth, engine):
    for _ in range(STEPS):
        if data.draw(st.integers(0, 2)) == 0:
            note(write(data, apps, auth, catalog, engine))
        for query in (data.draw(queries(catalog)) for _ in range(2)):
            note(f"query {query}")
            compare(apps, query)
