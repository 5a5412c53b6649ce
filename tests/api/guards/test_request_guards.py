"""The request target is bounded: a path and query string over MAX_TARGET_BYTES is a 414 problem, on
every path, and the document says so."""

from __future__ import annotations

import io
import json

import pytest

from api.guards.request_guards import MAX_TARGET_BYTES


def padded(path: str, total: int) -> str:
    """``path`` with a query string that makes the target exactly ``total`` bytes."""
    return f"{path}?q=" + "a" * (total - len(path) - 3)


@pytest.mark.parametrize("path", ["/v1/products", "/v1/products/1/reviews", "/v1/nowhere"])
def test_a_target_over_the_bound_is_414_problem_naming_the_cause(client, path):
    response = client.get(padded(path, MAX_TARGET_BYTES + 1))
    assert response.status_code == 414
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["detail"] == "the path and query string are 8001 bytes, over the 8000-byte limit"
    assert body["errors"][0]["in"] == "query"


def test_a_target_at_the_bound_reaches_the_view(client):
    response = client.get(padded("/v1/products", MAX_TARGET_BYTES))
    assert response.status_code == 400  # q is over its own maxLength: the view's parser answers
    assert response.get_json()["errors"][0]["field"] == "q"


def test_the_bound_counts_the_target_as_sent(client):
    """Percent-encoded bytes count as sent: 3,000 encoded characters are 9,000 bytes."""
    response = client.get("/v1/products", environ_overrides={"RAW_URI": "/v1/products?q=" + "%C3" * 3_000})
    assert response.status_code == 414


def test_every_operation_documents_the_414(client):
    spec = client.get("/openapi.json").get_json()
    operations = [op for path in spec["paths"].values() for op in path.values() if "responses" in op]
    assert operations
    assert all("414" in op["responses"] for op in operations)
    assert str(MAX_TARGET_BYTES) in spec["components"]["responses"]["REQUEST_URI_TOO_LONG"]["description"]
    assert f"at most {MAX_TARGET_BYTES} bytes" in spec["info"]["description"]


def chunked_post(client, auth, body: bytes):
    """A POST whose body arrives chunked, as gunicorn hands one on: no declared length."""
    return client.post(
        "/v1/products",
        input_stream=io.BytesIO(body),
        headers={**auth, "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )


def name_of_length(total: int) -> bytes:
    """A product document of exactly ``total`` bytes."""
    return json.dumps({"name": "x" * (total - len('{"name": ""}'))}).encode()


def test_a_chunked_body_over_the_limit_is_413_not_a_truncated_documents_400(app, client, auth):
    limit = app.config["MAX_CONTENT_LENGTH"]
    response = chunked_post(client, auth, name_of_length(limit + 1))
    assert response.status_code == 413 and response.mimetype == "application/problem+json"
    assert response.get_json()["detail"] == f"request body is over the {limit}-byte limit"


@pytest.mark.parametrize("over", [0, -1000])
def test_a_chunked_body_within_the_limit_is_read_whole(app, client, auth, over):
    body = name_of_length(app.config["MAX_CONTENT_LENGTH"] + over)
    response = chunked_post(client, auth, body)
    assert response.status_code == 422  # the view's schema read it all: the name is too long
    assert "name" in {error["field"] for error in response.get_json()["errors"]}
