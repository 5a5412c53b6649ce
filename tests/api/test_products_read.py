"""GET /v1/products/{id} and GET /v1/products: representation, filters, sorts, keyset cursors."""

from __future__ import annotations

import base64
from decimal import Decimal

import pytest

from tests.factories import make_category, make_product, make_products


@pytest.fixture
def category(engine):
    return make_category(engine)


def test_product_detail_has_the_documented_fields(client, engine, category):
    product = make_product(engine, category, price=Decimal("12.5"), stock=0)
    response = client.get(f"/v1/products/{product.id}")
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {
        "id", "sku", "name", "slug", "description", "brand", "price", "currency", "stock", "in_stock",
        "attributes", "category", "rating", "version", "created_at", "updated_at",
    }  # fmt: skip
    assert body["price"] == "12.50"
    assert body["in_stock"] is False
    assert body["category"] == {"id": category.id, "slug": category.slug, "name": category.name}
    assert body["rating"] == {"average": None, "count": 0}
    assert body["created_at"].endswith("+00:00")
    assert response.headers["ETag"].startswith('"')


@pytest.mark.parametrize("path_id", ["0", "-1", "2147483648", "99999999999999999999"])
def test_out_of_range_ids_are_404_not_500(client, path_id):
    response = client.get(f"/v1/products/{path_id}")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def test_unknown_and_inactive_products_are_404(client, engine, category):
    inactive = make_product(engine, category, is_active=False)
    for product_id in (inactive.id, inactive.id + 1000):
        response = client.get(f"/v1/products/{product_id}")
        assert response.status_code == 404
        assert response.get_json()["status"] == 404


def test_if_none_match_answers_304_until_the_product_changes(client, engine, category, auth):
    product = make_product(engine, category)
    etag = client.get(f"/v1/products/{product.id}").headers["ETag"]
    assert client.get(f"/v1/products/{product.id}", headers={"If-None-Match": etag}).status_code == 304
    client.patch(f"/v1/products/{product.id}", json={"stock": 99}, headers=auth)
    again = client.get(f"/v1/products/{product.id}", headers={"If-None-Match": etag})
    assert again.status_code == 200
    assert again.headers["ETag"] != etag


def _all_pages(client, query: str) -> list[dict]:
    items, cursor = [], None
    while True:
        url = f"/v1/products?{query}" + (f"&cursor={cursor}" if cursor else "")
        response = client.get(url)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


@pytest.mark.parametrize(
    ("sort", "key", "reverse"),
    [
        ("name", lambda p: (p["name"], p["id"]), False),
        ("price", lambda p: (Decimal(p["price"]), p["id"]), False),
        ("-price", lambda p: (Decimal(p["price"]), p["id"]), True),
        ("newest", lambda p: (p["created_at"], p["id"]), True),
    ],
)
def test_pages_walk_every_product_once_in_sort_order(client, engine, category, sort, key, reverse):
    make_products(engine, category, 23)
    make_products(engine, category, 4, price=Decimal("5.00"))  # ties are broken by id
    items = _all_pages(client, f"sort={sort}&limit=5")
    assert len(items) == 27
    assert len({p["id"] for p in items}) == 27
    assert items == sorted(items, key=key, reverse=reverse)


def test_rating_sort_orders_by_average(client, engine, category, auth):
    products = make_products(engine, category, 4)
    for stars, product in zip([3, 5, 1, 4], products, strict=True):
        client.post(
            f"/v1/products/{product.id}/reviews",
            json={"rating": stars, "title": "ok", "author": "a"},
            headers=auth,
        )
    items = _all_pages(client, "sort=-rating&limit=3")
    assert [p["rating"]["average"] for p in items] == [5.0, 4.0, 3.0, 1.0]


def test_unrated_products_come_last_in_both_rating_orders(client, engine, category, auth):
    unrated = make_products(engine, category, 3)
    rated = make_products(engine, category, 3)
    for stars, product in zip([2, 5, 4], rated, strict=True):
        review = {"rating": stars, "title": "ok", "author": "a"}
        assert client.post(f"/v1/products/{product.id}/reviews", json=review, headers=auth).status_code == 201
    for sort, averages in (("rating", [2.0, 4.0, 5.0]), ("-rating", [5.0, 4.0, 2.0])):
        items = _all_pages(client, f"sort={sort}&limit=2")  # the unrated end crosses a page boundary
        assert [p["rating"]["average"] for p in items] == [*averages, None, None, None], sort
        assert sorted(p["id"] for p in items[3:]) == sorted(p.id for p in unrated)


def test_keyset_pages_are_stable_under_concurrent_inserts(client, engine, category):
    originals = make_products(engine, category, 10)
    first = client.get("/v1/products?sort=newest&limit=4").get_json()
    make_products(engine, category, 5)  # newer rows land before the cursor, not in later pages
    seen = [p["id"] for p in first["items"]]
    cursor = first["next_cursor"]
    while cursor:
        body = client.get(f"/v1/products?sort=newest&limit=4&cursor={cursor}").get_json()
        seen += [p["id"] for p in body["items"]]
        cursor = body["next_cursor"]
    assert sorted(seen) == sorted(p.id for p in originals)


def test_filters_combine(client, engine, category, auth):
    child = make_category(engine, parent=category)
    other = make_category(engine)
    wanted = make_product(engine, child, brand="Zeta", price=Decimal("20.00"), stock=3, name="Blue kettle")
    make_product(engine, child, brand="Zeta", price=Decimal("20.00"), stock=0, name="Blue kettle two")
    make_product(engine, child, brand="Other", price=Decimal("20.00"), stock=3)
    make_product(engine, child, brand="Zeta", price=Decimal("90.00"), stock=3)
    make_product(engine, other, brand="Zeta", price=Decimal("20.00"), stock=3)
    query = f"category={category.slug}&brand=zeta&min_price=10&max_price=50&in_stock=true&q=kettle"
    items = client.get(f"/v1/products?{query}").get_json()["items"]
    assert [p["id"] for p in items] == [wanted.id]


def test_category_filter_includes_children(client, engine, category):
    child = make_category(engine, parent=category)
    in_parent, in_child = make_product(engine, category), make_product(engine, child)
    make_product(engine, make_category(engine))
    items = client.get(f"/v1/products?category={category.slug}").get_json()["items"]
    assert {p["id"] for p in items} == {in_parent.id, in_child.id}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("sort=random", "sort"),
        ("min_price=-1", "min_price"),
        ("min_price=abc", "min_price"),
        ("min_price=9&max_price=1", "min_price"),
        ("in_stock=maybe", "in_stock"),
        ("colour=red", "colour"),
        ("limit=5&limit=6", "limit"),
        ("category=Not%20A%20Slug", "category"),
    ],
)
def test_bad_list_queries_are_400_naming_the_field(client, query, field):
    response = client.get(f"/v1/products?{query}")
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert field in [error["field"] for error in response.get_json()["errors"]]


def test_unknown_category_filter_is_400_naming_it(client):
    response = client.get("/v1/products?category=no-such-category")
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == "category"


def _tampered(cursor: str) -> str:
    payload, signature = cursor.split(".")
    raw = bytearray(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    raw[-3] = ord("9") if raw[-3] != ord("9") else ord("8")
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode() + "." + signature


def test_tampered_or_foreign_cursors_are_rejected(client, engine, category):
    make_products(engine, category, 6)
    cursor = client.get("/v1/products?sort=price&limit=2").get_json()["next_cursor"]
    assert client.get(f"/v1/products?sort=price&limit=2&cursor={cursor}").status_code == 200
    for bad in (_tampered(cursor), "garbage", cursor[:-2], "a.b.c"):
        response = client.get(f"/v1/products?sort=price&limit=2&cursor={bad}")
        assert response.status_code == 400, bad
        assert response.get_json()["errors"][0]["field"] == "cursor"
    # A genuine cursor replayed against a different sort or filter is refused too.
    assert client.get(f"/v1/products?sort=name&limit=2&cursor={cursor}").status_code == 400
    assert client.get(f"/v1/products?sort=price&brand=x&cursor={cursor}").status_code == 400
