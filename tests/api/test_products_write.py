"""POST/PATCH/DELETE /v1/products: auth, validation, conflicts, If-Match, body guards."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy import text

from tests.factories import make_category, make_product


@pytest.fixture
def category(engine):
    return make_category(engine)


def new_product(category_, **overrides) -> dict:
    body = {
        "sku": "SKU-" + secrets.token_hex(4),
        "name": "Steel kettle",
        "brand": "Acme",
        "price": "19.99",
        "currency": "eur",
        "stock": 4,
        "attributes": {"color": "steel", "sizes": [1, 2]},
        "category": category_.slug,
    }
    body.update(overrides)
    return body


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic dGVzdA==", "Bearer", "bearer  "], ids=str)
def test_writes_without_a_valid_token_are_401(client, category, header):
    headers = {"Authorization": header} if header else {}
    response = client.post("/v1/products", json=new_product(category), headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.mimetype == "application/problem+json"


def test_create_returns_201_location_etag_and_the_representation(client, category, auth):
    body = new_product(category)
    response = client.post("/v1/products", json=body, headers=auth)
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert response.headers["Location"] == f"/v1/products/{created['id']}"
    assert created["currency"] == "EUR"
    assert created["price"] == "19.99"
    assert created["version"] == 1
    assert created["slug"].startswith("steel-kettle-")
    fetched = client.get(response.headers["Location"])
    assert fetched.get_json() == created
    assert fetched.headers["ETag"] == response.headers["ETag"]


def test_no_internal_field_leaks(client, category, auth):
    created = client.post("/v1/products", json=new_product(category), headers=auth).get_json()
    assert "search" not in created and "is_active" not in created and "category_id" not in created


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"price": "-1"}, "price"),
        ({"price": "1.999"}, "price"),
        ({"price": 12.5}, None),  # a JSON number is accepted
        ({"price": True}, "price"),
        ({"currency": "XXX"}, "currency"),
        ({"stock": -1}, "stock"),
        ({"stock": "3"}, "stock"),
        ({"sku": "has space"}, "sku"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"attributes": {"deep": {"nested": 1}}}, "attributes"),
        ({"attributes": [1, 2]}, "attributes"),
        ({"is_admin": True}, "is_admin"),
        ({"category": "no-such-category"}, "category"),
    ],
)
def test_invalid_products_are_422_naming_the_field(client, category, auth, overrides, field):
    response = client.post("/v1/products", json=new_product(category, **overrides), headers=auth)
    if field is None:
        assert response.status_code == 201
        return
    assert response.status_code == 422, response.get_json()
    assert field in [e["field"] for e in response.get_json()["errors"]]


def test_missing_required_fields_are_listed(client, auth):
    response = client.post("/v1/products", json={}, headers=auth)
    assert response.status_code == 422
    fields = {e["field"] for e in response.get_json()["errors"]}
    assert {"sku", "name", "brand", "price", "category"} <= fields


def test_duplicate_sku_is_409_and_nothing_is_written(client, engine, category, auth):
    body = new_product(category)
    assert client.post("/v1/products", json=body, headers=auth).status_code == 201
    response = client.post("/v1/products", json={**body, "name": "Other"}, headers=auth)
    assert response.status_code == 409
    assert response.get_json()["errors"][0]["field"] == "sku"
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM products")) == 1


def test_patch_is_partial_and_bumps_version_and_etag(client, engine, category, auth):
    product = make_product(engine, category)
    before = client.get(f"/v1/products/{product.id}")
    response = client.patch(f"/v1/products/{product.id}", json={"stock": 0}, headers=auth)
    assert response.status_code == 200
    after = response.get_json()
    assert after["stock"] == 0 and after["in_stock"] is False
    assert after["name"] == before.get_json()["name"]
    assert after["version"] == before.get_json()["version"] + 1
    assert response.headers["ETag"] != before.headers["ETag"]
    assert client.get(f"/v1/products/{product.id}").get_json() == after


def test_patch_with_stale_if_match_is_412_and_changes_nothing(client, engine, category, auth):
    product = make_product(engine, category)
    etag = client.get(f"/v1/products/{product.id}").headers["ETag"]
    assert client.patch(f"/v1/products/{product.id}", json={"stock": 1}, headers=auth).status_code == 200
    stale = client.patch(f"/v1/products/{product.id}", json={"stock": 2}, headers={**auth, "If-Match": etag})
    assert stale.status_code == 412
    assert client.get(f"/v1/products/{product.id}").get_json()["stock"] == 1
    fresh = client.get(f"/v1/products/{product.id}").headers["ETag"]
    ok = client.patch(f"/v1/products/{product.id}", json={"stock": 2}, headers={**auth, "If-Match": fresh})
    assert ok.status_code == 200


def test_patch_moves_a_product_between_categories(client, engine, category, auth):
    product = make_product(engine, category)
    target = make_category(engine)
    response = client.patch(f"/v1/products/{product.id}", json={"category": target.slug}, headers=auth)
    assert response.get_json()["category"]["slug"] == target.slug
    listed = client.get(f"/v1/products?category={target.slug}").get_json()["items"]
    assert [p["id"] for p in listed] == [product.id]


def test_patch_can_reactivate_a_hidden_product(client, engine, category, auth):
    product = make_product(engine, category, is_active=False)
    response = client.patch(f"/v1/products/{product.id}", json={"is_active": True}, headers=auth)
    assert response.status_code == 200
    assert client.get(f"/v1/products/{product.id}").status_code == 200


def test_patch_and_delete_unknown_are_404(client, auth):
    assert client.patch("/v1/products/987654", json={"stock": 1}, headers=auth).status_code == 404
    assert client.delete("/v1/products/987654", headers=auth).status_code == 404


def test_delete_is_204_then_404(client, engine, category, auth):
    product = make_product(engine, category)
    assert client.delete(f"/v1/products/{product.id}", headers=auth).status_code == 204
    assert client.get(f"/v1/products/{product.id}").status_code == 404


def test_wrong_content_type_is_415(client, category, auth):
    response = client.post("/v1/products", data="sku=x", headers={**auth, "Content-Type": "text/plain"})
    assert response.status_code == 415
    assert response.mimetype == "application/problem+json"


def test_malformed_json_is_400(client, auth):
    response = client.post(
        "/v1/products", data="{not json", headers={**auth, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"


def test_oversized_body_is_413(client, category, auth, settings):
    body = new_product(category, description="x" * (settings.max_body_bytes + 1))
    response = client.post("/v1/products", json=body, headers=auth)
    assert response.status_code == 413


def test_unsupported_method_is_405_problem(client):
    response = client.put("/v1/products", json={})
    assert response.status_code == 405
    assert response.mimetype == "application/problem+json"
    assert client.put("/v1/categories", data="x", content_type="text/plain").status_code == 405
