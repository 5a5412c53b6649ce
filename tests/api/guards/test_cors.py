"""CORS: off by default; on for an allow-list of origins only, errors included."""

from __future__ import annotations

import pytest

from catalog.config import ConfigError, Settings, parse_origins

SHOP = "https://shop.example"
PREFLIGHT = {
    "Origin": SHOP,
    "Access-Control-Request-Method": "PATCH",
    "Access-Control-Request-Headers": "Authorization, Content-Type, If-Match",
}


@pytest.fixture
def cors_client(make_app):
    return make_app(cors_origins=(SHOP, "http://localhost:3000")).test_client()


def test_cors_is_off_by_default(make_app):
    client = make_app().test_client()
    assert "Access-Control-Allow-Origin" not in client.get("/v1/categories", headers={"Origin": SHOP}).headers
    preflight = client.options("/v1/products/1", headers=PREFLIGHT)
    assert "Access-Control-Allow-Origin" not in preflight.headers
    assert "Access-Control-Allow-Methods" not in preflight.headers


def test_an_allowed_origin_may_read_and_see_the_useful_headers(cors_client):
    response = cors_client.get("/v1/categories", headers={"Origin": SHOP})
    assert response.headers["Access-Control-Allow-Origin"] == SHOP
    assert "Origin" in response.headers["Vary"]
    exposed = {h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"ETag", "Location", "RateLimit", "RateLimit-Policy", "Retry-After", "X-Request-ID"} <= exposed
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_an_allowed_origin_is_answered_on_errors_too(cors_client):
    response = cors_client.get("/v1/products/424242", headers={"Origin": "http://localhost:3000"})
    assert response.status_code == 404
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"


def test_a_preflight_for_a_write_is_answered(cors_client):
    response = cors_client.options("/v1/products/1", headers=PREFLIGHT)
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == SHOP
    assert "PATCH" in response.headers["Access-Control-Allow-Methods"]
    allowed = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "if-match"} <= allowed
    assert response.headers["Access-Control-Max-Age"] == "600"


@pytest.mark.parametrize("origin", ["https://evil.example", "https://shop.example.evil.example", "null"])
def test_other_origins_get_no_cors_headers(cors_client, origin):
    response = cors_client.get("/v1/categories", headers={"Origin": origin})
    assert "Access-Control-Allow-Origin" not in response.headers
    preflight = cors_client.options("/v1/products/1", headers={**PREFLIGHT, "Origin": origin})
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_origins_are_read_from_the_environment():
    settings = Settings.from_env({"SHELF_CORS_ORIGINS": " https://a.example/, http://localhost:3000 ,"})
    assert settings.cors_origins == ("https://a.example", "http://localhost:3000")
    assert Settings.from_env({}).cors_origins == ()


@pytest.mark.parametrize(
    "raw", ["*", "https://*.example", "https://a.example/app", "a.example", "ftp://a.example"]
)
def test_anything_but_exact_origins_is_refused(raw):
    with pytest.raises(ConfigError, match="SHELF_CORS_ORIGINS"):
        parse_origins(raw)
