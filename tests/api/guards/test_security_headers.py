"""Security headers on every response, errors included; a working policy for /docs; HSTS on request."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from api.guards.security_headers import JSON_CSP

STATIC = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def assert_secured(response, csp: str = JSON_CSP) -> None:
    """Each header once: they are appended, not set, so a second copy would show here."""
    for name, value in STATIC.items():
        assert response.headers.getlist(name) == [value], name
    assert response.headers.getlist("Content-Security-Policy") == [csp]
    assert len(response.headers.getlist("X-Request-ID")) == 1


@pytest.fixture
def app(make_app):
    app = make_app(rate_limit_reads="2/minute")
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/boom")
    def boom():
        raise RuntimeError("boom")

    return app


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/categories", 200),
        ("GET", "/v1/products/424242", 404),
        ("GET", "/no/such/path", 404),
        ("PUT", "/v1/categories", 405),
        ("POST", "/v1/categories", 401),
        ("GET", "/boom", 500),
        ("GET", "/healthz", 200),
        ("GET", "/openapi.json", 200),
    ],
)
def test_every_response_is_secured(app, method, path, status):
    response = app.test_client().open(path, method=method, json={} if method in ("POST", "PUT") else None)
    assert response.status_code == status
    assert_secured(response)


def test_throttled_and_oversized_responses_are_secured_too(app, auth):
    client = app.test_client()
    statuses = [client.get("/v1/categories").status_code for _ in range(3)]
    assert statuses[-1] == 429
    assert_secured(client.get("/v1/categories"))
    huge = client.post(
        "/v1/categories", data="x" * (2 * 1024 * 1024), headers={**auth, "Content-Type": "application/json"}
    )
    assert huge.status_code == 413
    assert_secured(huge)


def test_docs_policy_allows_the_app_own_assets_and_only_the_page_own_inline_script(app):
    response = app.test_client().get("/docs")
    assert response.status_code == 200
    assert_secured(response, csp=response.headers["Content-Security-Policy"])
    csp = dict(part.strip().split(" ", 1) for part in response.headers["Content-Security-Policy"].split(";"))
    inline = re.search(r"<script>(.*?)</script>", response.get_data(as_text=True), re.S)[1]
    digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    assert csp["script-src"] == f"'self' 'sha256-{digest}'"
    assert "'unsafe-inline'" not in csp["script-src"] and "'unsafe-eval'" not in csp["script-src"]
    assert csp["default-src"] == "'none'" and csp["frame-ancestors"] == "'none'"
    assert csp["connect-src"] == "'self'"  # Swagger UI fetches /openapi.json and tries requests
    for name, value in STATIC.items():
        assert response.headers[name] == value


def test_hsts_is_off_by_default_and_sent_when_configured(make_app):
    assert "Strict-Transport-Security" not in make_app().test_client().get("/healthz").headers
    response = make_app(hsts_seconds=31536000).test_client().get("/v1/products/1")
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
