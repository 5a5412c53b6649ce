"""Every endpoint with Redis down, then with PostgreSQL down: no 500 anywhere.

The routes come from the app's own URL map, so an endpoint added later is swept
too. Each is called with a body it would accept, so the request reaches the
server that is down rather than stopping at validation. A server is "down" by
pointing the app at a local port nothing listens on. Whatever cannot be
answered is a 503 problem+json that says when to retry (``Retry-After``).
"""

from __future__ import annotations

import pytest

from tests.factories import make_category, make_product, token

PROBLEM = "application/problem+json"
QUEUE_ENDPOINTS = {
    ("POST", "/v1/admin/cache/warm"),
    ("POST", "/v1/admin/aggregates/recompute"),
    ("POST", "/v1/admin/cache/purge"),
    ("GET", "/v1/jobs/<string(maxlength=64):job_id>"),
}
"""Endpoints that cannot answer without Redis: with it down they must be a 503, not merely not a 500."""


def bodies(category_slug: str) -> dict[tuple[str, str], dict]:
    """A body each write endpoint accepts (unlisted: ``{}``)."""
    product = {
        "sku": token("SWEEP"),
        "name": "Sweep",
        "brand": "B",
        "price": "1.00",
        "category": category_slug,
    }
    return {
        ("POST", "/v1/products"): product,
        ("PATCH", "/v1/products/<int(signed=True):product_id>"): {"stock": 3},
        ("POST", "/v1/products/<int(signed=True):product_id>/reviews"): {
            "rating": 4,
            "title": "t",
            "author": "a",
        },
        ("POST", "/v1/categories"): {"slug": token("sweep"), "name": "Sweep"},
        ("PATCH", "/v1/categories/<string(maxlength=80):slug>"): {"name": "Swept"},
        ("POST", "/v1/admin/cache/warm"): {"scope": "all"},
        ("POST", "/v1/admin/aggregates/recompute"): {"scope": "all"},
    }


def calls(app, product_id: int, category_slug: str) -> list[tuple[str, str, str]]:
    """(method, rule, path) for every route and method of the app; deletions last."""
    values = {"product_id": product_id, "slug": category_slug, "job_id": "sweep-job", "filename": "x.css"}
    values["review_id"] = 1
    found = []
    for rule in app.url_map.iter_rules():
        path = rule.build({name: values[name] for name in rule.arguments}, append_unknown=False)[1]
        found += [(method, rule.rule, path) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return sorted(found, key=lambda call: call[0] == "DELETE")


def sweep(app, product_id: int, category_slug: str, auth) -> dict[tuple[str, str], object]:
    client, examples = app.test_client(), bodies(category_slug)
    answers = {}
    for method, rule, path in calls(app, product_id, category_slug):
        body = examples.get((method, rule), {}) if method in ("POST", "PATCH", "PUT") else None
        answers[method, rule] = client.open(path, method=method, json=body, headers=auth)
    return answers


def assert_no_500_and_503s_say_when(answers) -> None:
    assert not {
        call: r.status_code for call, r in answers.items() if r.status_code >= 500 and r.status_code != 503
    }
    for call, response in answers.items():
        if response.status_code == 503:
            assert response.mimetype == PROBLEM, call
            assert int(response.headers["Retry-After"]) > 0, call


@pytest.fixture
def catalog(engine):
    category = make_category(engine)
    return make_product(engine, category).id, category.slug


def test_with_redis_down_no_endpoint_answers_500(make_app, unused_port, catalog, auth):
    app = make_app(redis_url=f"redis://127.0.0.1:{unused_port}/0", jobs_eager=False)
    answers = sweep(app, *catalog, auth)
    assert_no_500_and_503s_say_when(answers)
    assert {call: answers[call].status_code for call in QUEUE_ENDPOINTS} == dict.fromkeys(
        QUEUE_ENDPOINTS, 503
    )
    assert answers["GET", "/v1/products/<int(signed=True):product_id>"].status_code == 200
    assert answers["POST", "/v1/products/<int(signed=True):product_id>/reviews"].status_code == 201


def test_with_postgres_down_no_endpoint_answers_500(make_app, unused_port, catalog, auth):
    app = make_app(
        database_url=f"postgresql+psycopg2://postgres@127.0.0.1:{unused_port}/shelf", jobs_eager=False
    )
    answers = sweep(app, *catalog, auth)
    assert_no_500_and_503s_say_when(answers)
    assert answers["POST", "/v1/products"].status_code == 503
