"""Probes, request ids and logs, the OpenAPI document, and the 500 path."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest

from api import create_app
from catalog.logs import JsonFormatter


def test_healthz_is_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_checks_both_servers(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"postgres": "ok", "redis": "ok"}


def test_readyz_names_what_is_down(settings, unused_port):
    app = create_app(settings.replace(redis_url=f"redis://127.0.0.1:{unused_port}/0"))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["checks"] == {"postgres": "ok", "redis": "down"}
    assert "redis" in response.get_json()["detail"]
    # Built by the one problem helper: the request id every problem carries, the 503's Retry-After.
    assert response.get_json()["request_id"] == response.headers["X-Request-ID"]
    assert int(response.headers["Retry-After"]) > 0


def test_a_database_outage_is_503_problem(settings, unused_port):
    url = settings.database_url.replace("127.0.0.1:5432", f"127.0.0.1:{unused_port}")
    url = url if url != settings.database_url else f"postgresql+psycopg2://postgres@127.0.0.1:{unused_port}/x"
    app = create_app(settings.replace(database_url=url))
    response = app.test_client().get("/v1/products/1")
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"


def test_request_id_is_echoed_or_generated(client):
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id; drop"}).headers["X-Request-ID"]
    assert len(generated) == 32 and generated.isalnum()


@pytest.fixture
def log_lines():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("shelf")
    logger.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)


def test_each_request_logs_one_json_line_without_secrets(client, auth, log_lines):
    client.get("/v1/products?limit=1", headers={**auth, "X-Request-ID": "req-42"})
    lines = log_lines()
    request_lines = [line for line in lines if line.get("request_id") == "req-42"]
    assert len(request_lines) == 1
    line = request_lines[0]
    assert line["path"] == "/v1/products" and line["status"] == 200 and "duration_ms" in line
    assert auth["Authorization"].split()[1] not in json.dumps(lines)


def test_unexpected_errors_are_500_problem_without_internals(app, log_lines):
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals: SELECT * FROM products")

    response = app.test_client().get("/boom", headers={"X-Request-ID": "boom-1"})
    assert response.status_code == 500
    body = response.get_json()
    assert body["request_id"] == "boom-1"
    assert "SELECT" not in response.get_data(as_text=True)
    assert any("secret internals" in line.get("exc", "") for line in log_lines())  # logged for operators


def test_openapi_documents_every_endpoint_and_problem_errors(client):
    spec = client.get("/openapi.json").get_json()
    assert {
        "/v1/products", "/v1/products/{product_id}", "/v1/products/{product_id}/reviews",
        "/v1/categories", "/v1/categories/{slug}",
    } <= set(spec["paths"])  # fmt: skip
    listing = spec["paths"]["/v1/products"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {"category", "brand", "sort", "limit", "cursor", "q"}
    post = spec["paths"]["/v1/products"]["post"]
    assert post["security"] == [{"bearerAuth": []}]
    assert "application/problem+json" in spec["components"]["responses"]["NOT_FOUND"]["content"]
    assert client.get("/docs").status_code == 200


def test_docs_page_loads_swagger_ui_from_the_app_itself(client):
    page = client.get("/docs").get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert {"/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"} <= set(assets)
    for path in assets:  # nothing from another host: the page works offline
        response = client.get(path)
        body = response.get_data()
        response.close()  # a file response: close it, as a server would
        assert response.status_code == 200 and len(body) > 1000, path
        assert response.mimetype in ("text/javascript", "application/javascript", "text/css"), path


@pytest.fixture
def unused_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
