"""/v1/products/{id}/reviews: newest-first pages and posting a review."""

from __future__ import annotations

import random

import pytest

from tests.factories import make_category, make_product


@pytest.fixture
def product(engine):
    return make_product(engine, make_category(engine))


def post_review(client, auth, product_id, rating):
    body = {"rating": rating, "title": f"{rating} stars", "body": "text", "author": "someone"}
    return client.post(f"/v1/products/{product_id}/reviews", json=body, headers=auth)


def test_posting_reviews_updates_the_product_rating(client, auth, product):
    ratings = [random.randint(1, 5) for _ in range(7)]
    for rating in ratings:
        response = post_review(client, auth, product.id, rating)
        assert response.status_code == 201
        assert response.get_json()["rating"] == rating
    summary = client.get(f"/v1/products/{product.id}").get_json()["rating"]
    assert summary["count"] == len(ratings)
    assert summary["average"] == round(sum(ratings) / len(ratings), 2)


def test_a_new_review_location_answers_with_that_review(client, auth, engine, product):
    created = post_review(client, auth, product.id, 4)
    location = created.headers["Location"]
    assert location == f"/v1/products/{product.id}/reviews/{created.get_json()['id']}"
    response = client.get(location)
    assert response.status_code == 200 and response.get_json() == created.get_json()
    assert response.headers["ETag"] == created.headers["ETag"]
    other = make_product(engine, make_category(engine))
    for path in (
        f"/v1/products/{other.id}/reviews/{created.get_json()['id']}",
        f"{location}0",
        f"/v1/products/{product.id}/reviews/-1",
    ):
        missing = client.get(path)
        assert missing.status_code == 404 and missing.mimetype == "application/problem+json", path


def test_reviews_list_newest_first_across_pages(client, auth, product):
    ids = [post_review(client, auth, product.id, 4).get_json()["id"] for _ in range(7)]
    seen, cursor = [], None
    while True:
        url = f"/v1/products/{product.id}/reviews?limit=3" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(url).get_json()
        seen += [r["id"] for r in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))


def test_review_cursor_is_bound_to_its_product(client, auth, engine, product):
    other = make_product(engine, make_category(engine))
    for _ in range(3):
        post_review(client, auth, product.id, 5)
        post_review(client, auth, other.id, 5)
    cursor = client.get(f"/v1/products/{product.id}/reviews?limit=1").get_json()["next_cursor"]
    assert client.get(f"/v1/products/{other.id}/reviews?limit=1&cursor={cursor}").status_code == 400


@pytest.mark.parametrize(("field", "value"), [("rating", 0), ("rating", 6), ("rating", "5"), ("title", "")])
def test_invalid_reviews_are_422(client, auth, product, field, value):
    body = {"rating": 3, "title": "t", "author": "a", field: value}
    response = client.post(f"/v1/products/{product.id}/reviews", json=body, headers=auth)
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == field


def test_reviews_of_unknown_products_are_404(client, auth):
    assert client.get("/v1/products/876543/reviews").status_code == 404
    assert post_review(client, auth, 876543, 5).status_code == 404


def test_posting_a_review_needs_a_token(client, product):
    response = client.post(
        f"/v1/products/{product.id}/reviews", json={"rating": 5, "title": "t", "author": "a"}
    )
    assert response.status_code == 401
