"""Nothing internal leaks: no stack traces, SQL or column names in responses, no tokens in logs."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import ProgrammingError

from catalog.services import products as product_service
from tests.conftest import TEST_TOKEN
from tests.factories import make_category, make_product

INTERNAL_FIELDS = {"category_id", "is_active", "search", "parent_id", "histogram"}
INTERNALS_IN_TEXT = ["Traceback", 'File "', "SELECT ", "FROM products", "psycopg2", "sqlalchemy", "Error:"]


def keys_of(document) -> set[str]:
    """Every object key anywhere in ``document``."""
    found, stack = set(), [document]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            found |= set(value)
            stack += list(value.values())
        elif isinstance(value, list):
            stack += value
    return found


def assert_no_internals(response) -> None:
    text = response.get_data(as_text=True)
    for marker in INTERNALS_IN_TEXT:
        assert marker not in text, marker


@pytest.fixture
def catalog(engine):
    parent = make_category(engine)
    child = make_category(engine, parent=parent)
    return child, make_product(engine, child, attributes={"color": "red"})


@pytest.fixture
def crashing_app(make_app):
    app = make_app()
    app.config["PROPAGATE_EXCEPTIONS"] = False
    return app


def test_product_and_category_bodies_hold_only_public_fields(client, auth, catalog):
    category, product = catalog
    bodies = [
        client.get(f"/v1/products/{product.id}").get_json(),
        client.get("/v1/products").get_json(),
        client.get(f"/v1/products?q=widget&category={category.slug}").get_json(),
        client.get("/v1/categories").get_json(),
        client.get(f"/v1/categories/{category.slug}").get_json(),
        client.patch(f"/v1/products/{product.id}", json={"stock": 3}, headers=auth).get_json(),
        client.post(
            "/v1/products",
            json={"sku": "SKU-L1", "name": "Lamp", "brand": "Acme", "price": "5", "category": category.slug},
            headers=auth,
        ).get_json(),
    ]
    for body in bodies:
        assert not keys_of(body) & INTERNAL_FIELDS, keys_of(body) & INTERNAL_FIELDS


def test_a_500_says_nothing_of_its_cause(crashing_app, monkeypatch, catalog):
    _category, product = catalog

    def crash(*_args, **_kwargs):
        raise ProgrammingError("SELECT category_id, is_active FROM products WHERE search @@ $1", {}, None)

    monkeypatch.setattr(product_service, "get_product", crash)
    response = crashing_app.test_client().get(f"/v1/products/{product.id}")
    assert response.status_code == 500
    assert_no_internals(response)
    assert not {"category_id", "is_active"} & set(response.get_data(as_text=True).split())


def test_a_database_outage_503_says_nothing_of_the_database(make_app, unused_port):
    app = make_app(database_url=f"postgresql+psycopg2://postgres@127.0.0.1:{unused_port}/shelf")
    response = app.test_client().get("/v1/products/1")
    assert response.status_code == 503
    assert_no_internals(response)
    assert str(unused_port) not in response.get_data(as_text=True)


def test_a_redis_outage_503_from_readyz_says_nothing_of_redis(make_app, unused_port):
    app = make_app(redis_url=f"redis://127.0.0.1:{unused_port}/0")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert_no_internals(response)
    assert str(unused_port) not in response.get_data(as_text=True)


def test_problem_bodies_for_client_errors_hold_no_internals(client, auth):
    responses = [
        client.get("/v1/products/424242"),
        client.get("/v1/products?sort=nope"),
        client.post("/v1/products", json={"is_active": "x"}, headers=auth),
        client.post("/v1/categories", json={"slug": "a", "name": "A", "parent": "missing"}, headers=auth),
    ]
    for response in responses:
        assert 400 <= response.status_code < 500
        assert_no_internals(response)


def test_tokens_never_reach_the_logs(make_app, catalog, log_output, unused_port):
    category, product = catalog
    app = make_app(log_level="DEBUG", rate_limit_writes="2/minute")
    client = app.test_client()
    auth = {"Authorization": f"Bearer {TEST_TOKEN}"}
    guessed = {"Authorization": "Bearer guessed-token-value-123"}
    body = {"sku": "SKU-T1", "name": "Tea", "brand": "Acme", "price": "3", "category": category.slug}
    assert client.post("/v1/products", json=body, headers=auth).status_code == 201
    assert client.patch(f"/v1/products/{product.id}", json={"name": "\x00"}, headers=auth).status_code == 422
    assert client.post("/v1/products", json=body, headers=auth).status_code == 429
    assert client.post("/v1/products", json=body, headers=guessed).status_code == 401
    failing_open = make_app(log_level="DEBUG", queue_redis_url=f"redis://127.0.0.1:{unused_port}/0")
    assert failing_open.test_client().delete(f"/v1/products/{product.id}", headers=auth).status_code == 204
    logged = log_output()
    assert "shelf.limits" in logged and "shelf.request" in logged  # the capture saw the app's lines
    assert TEST_TOKEN not in logged and "guessed-token-value-123" not in logged
    assert "Bearer" not in logged
