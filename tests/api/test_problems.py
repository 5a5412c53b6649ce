"""Every error path answers one problem+json scheme: ``type`` about:blank, ``title`` the status phrase;
a 404 says the same whether it came from the database or from the cache; a 401 names what needs a token."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from tests.factories import make_category, make_product

JSON = {"Content-Type": "application/json"}


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["type"] == "about:blank" and body["title"] == HTTPStatus(status).phrase
    assert body["status"] == status and body["detail"]
    return body


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        ("/v1/products/987654", "product 987654 not found"),
        ("/v1/products/0", "product 0 not found"),
        ("/v1/products/987654/reviews", "product 987654 not found"),
        ("/v1/categories/no-such-slug", "category 'no-such-slug' not found"),
    ],
)
def test_a_404_says_the_same_from_the_database_and_from_the_cache(client, path, detail):
    first, second = client.get(path), client.get(path)
    assert [assert_problem(r, 404)["detail"] for r in (first, second)] == [detail, detail]
    if path != "/v1/products/0":  # an id no product can have is answered before the cache
        assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")


def test_validation_and_request_errors_share_the_scheme(client, auth, engine):
    category = make_category(engine)
    product = make_product(engine, category)
    bad_body = client.post("/v1/products", json={"name": ""}, headers=auth)
    assert assert_problem(bad_body, 422)["errors"]
    not_json = client.post("/v1/products", data="{oops", headers={**auth, **JSON})
    assert_problem(not_json, 400)
    assert_problem(client.post("/v1/products", data="x", headers={**auth, "Content-Type": "text/plain"}), 415)
    assert assert_problem(client.get("/v1/products?sort=sideways"), 400)["errors"][0]["field"] == "sort"
    assert_problem(client.get("/v1/products?cursor=forged"), 400)
    assert_problem(
        client.patch(f"/v1/products/{product.id}", json={}, headers={**auth, "If-Match": '"x"'}), 412
    )
    assert_problem(client.put(f"/v1/products/{product.id}", json={}, headers=auth), 405)
    assert_problem(client.get("/v1/nothing-here"), 404)


def test_a_401_names_what_needs_the_token(client):
    write = assert_problem(client.post("/v1/categories", json={}), 401)
    assert write["detail"] == "a valid bearer token is required for writes"
    stats = assert_problem(client.get("/v1/admin/cache/stats"), 401)
    assert stats["detail"] == "a valid bearer token is required for reads of /v1/admin"


def test_a_429_shares_the_scheme(make_app):
    client = make_app(rate_limit_reads="1/minute").test_client()
    client.get("/v1/categories")
    assert "reads" in assert_problem(client.get("/v1/categories"), 429)["detail"]
