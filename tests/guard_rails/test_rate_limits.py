"""Rate limits: read and write budgets, the 429 problem and its headers, exemptions, failing open."""

from __future__ import annotations

import re

import pytest
import redis

from api.config import ConfigError, Settings
from api.rate_limits import EXTENSION_KEY
from cache.breaker import Breaker
from tests.cache.support import commands_sent

from .conftest import log_records

TOKEN_A, TOKEN_B = "token-a-" + "x" * 16, "token-b-" + "y" * 16
RATE_LIMIT = re.compile(r'^"(?P<name>[a-z0-9-]+)";r=(?P<r>\d+);t=(?P<t>\d+)$')


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def from_ip(address: str) -> dict:
    return {"REMOTE_ADDR": address}


def remaining(response) -> int:
    return int(RATE_LIMIT.match(response.headers["RateLimit"])["r"])


def storage_errors(app) -> float:
    registry = app.extensions["shelf.metrics_registry"]
    return registry.get_sample_value("shelf_rate_limit_storage_errors_total") or 0.0


@pytest.fixture
def limited(make_app):
    """An app with small budgets and two write tokens."""
    return make_app(
        rate_limit_reads="3/minute",
        rate_limit_writes="2/minute",
        api_tokens={"alpha": TOKEN_A, "beta": TOKEN_B},
    )


def test_reads_under_the_limit_carry_the_policy_and_what_remains(limited):
    client = limited.test_client()
    responses = [client.get("/v1/categories") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert all(r.headers["RateLimit-Policy"] == '"reads";q=3;w=60' for r in responses)
    assert [remaining(r) for r in responses] == [2, 1, 0]
    assert all(0 < int(RATE_LIMIT.match(r.headers["RateLimit"])["t"]) <= 60 for r in responses)
    assert "Retry-After" not in responses[0].headers


def test_over_the_limit_is_a_429_problem_with_retry_after(limited):
    client = limited.test_client()
    for _ in range(3):
        client.get("/v1/categories")
    response = client.get("/v1/categories", headers={"X-Request-ID": "over-1"})
    assert response.status_code == 429
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == 429 and body["title"] == "Too Many Requests"
    assert body["type"] == "/problems/rate-limited" and "reads" in body["detail"]
    assert body["request_id"] == "over-1"
    assert 0 < int(response.headers["Retry-After"]) <= 60
    assert remaining(response) == 0
    assert RATE_LIMIT.match(response.headers["RateLimit"])["t"] == response.headers["Retry-After"]


def test_reads_are_counted_per_client_ip(limited):
    client = limited.test_client()
    for _ in range(3):
        client.get("/v1/categories", environ_base=from_ip("10.0.0.1"))
    assert client.get("/v1/categories", environ_base=from_ip("10.0.0.1")).status_code == 429
    assert client.get("/v1/categories", environ_base=from_ip("10.0.0.2")).status_code == 200


def test_writes_are_counted_per_token_apart_from_reads(limited):
    client = limited.test_client()
    # An empty body is a 422, but the write still counts: the limit comes before the view.
    statuses = [client.post("/v1/categories", json={}, headers=bearer(TOKEN_A)).status_code for _ in range(3)]
    assert statuses == [422, 422, 429]
    other_token = client.post("/v1/categories", json={}, headers=bearer(TOKEN_B))
    assert other_token.status_code == 422
    assert other_token.headers["RateLimit-Policy"] == '"writes";q=2;w=60'
    assert remaining(other_token) == 1
    read = client.get("/v1/categories")
    assert read.status_code == 200 and remaining(read) == 2


def test_a_token_keeps_its_budget_across_addresses(limited):
    client = limited.test_client()
    for address in ("10.0.0.1", "10.0.0.2"):
        client.post("/v1/categories", json={}, headers=bearer(TOKEN_A), environ_base=from_ip(address))
    response = client.post(
        "/v1/categories", json={}, headers=bearer(TOKEN_A), environ_base=from_ip("10.0.0.3")
    )
    assert response.status_code == 429


def test_writes_without_a_valid_token_are_limited_by_ip(limited):
    client = limited.test_client()
    guesses = [client.post("/v1/categories", json={}, headers=bearer("guess")).status_code for _ in range(3)]
    assert guesses == [401, 401, 429]
    assert client.post("/v1/categories", json={}, headers=bearer(TOKEN_A)).status_code == 422


def test_a_budget_with_several_windows_names_each_policy(make_app):
    client = make_app(rate_limit_reads="2/minute;50/hour").test_client()
    response = client.get("/v1/categories")
    assert response.headers["RateLimit-Policy"] == '"reads-60s";q=2;w=60, "reads-3600s";q=50;w=3600'
    assert re.fullmatch(r'"reads-60s";r=1;t=\d+, "reads-3600s";r=49;t=\d+', response.headers["RateLimit"])


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"])
def test_probes_metrics_and_docs_are_exempt(make_app, path):
    client = make_app(rate_limit_reads="1/minute").test_client()
    responses = [client.get(path) for _ in range(3)]
    assert all(r.status_code == 200 for r in responses)
    assert all("RateLimit" not in r.headers for r in responses)
    assert remaining(client.get("/v1/categories")) == 0  # the exempt calls spent nothing


def test_limits_can_be_turned_off(make_app):
    client = make_app(rate_limits_enabled=False, rate_limit_reads="1/minute").test_client()
    responses = [client.get("/v1/categories") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert "RateLimit" not in responses[-1].headers


def test_counters_live_in_redis_under_the_prefix(make_app, redis_client):
    make_app(rate_limit_prefix="test-prefix-x").test_client().get("/v1/categories")
    assert redis_client.keys("test-prefix-x:*")


def test_redis_down_fails_open_with_a_log_line_and_a_metric(make_app, unused_port, log_output):
    app = make_app(rate_limit_reads="1/minute", rate_limit_redis_url=f"redis://127.0.0.1:{unused_port}/0")
    client = app.test_client()
    responses = [client.get("/v1/categories") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert all("RateLimit" not in r.headers for r in responses)
    warnings = [line for line in log_records(log_output()) if line["logger"] == "shelf.limits"]
    assert len(warnings) == 1 and "serving without limits" in warnings[0]["msg"]
    # One failure opens the breaker: the next requests do not wait on Redis at all.
    assert storage_errors(app) == 1


def test_a_request_costs_one_script_call_whatever_the_windows(make_app, redis_url):
    app = make_app(rate_limit_reads="2/minute;50/hour")
    client = app.test_client()
    limiter_client = app.extensions[EXTENSION_KEY].counter.client
    client.get("/v1/categories")  # the first call may also load the script into a fresh Redis
    commands = commands_sent(limiter_client, redis_url, lambda: client.get("/v1/categories"))
    assert [command.split()[0] for command in commands] == ["EVALSHA"]


def test_limits_resume_once_the_store_answers_again(limited, monkeypatch):
    limiter = limited.extensions[EXTENSION_KEY]
    now = [0.0]
    limiter.breaker = Breaker(threshold=1, cooldown=5, clock=lambda: now[0])
    client = limited.test_client()
    real_hit = limiter.counter.hit

    def fail(*_args, **_kwargs):
        raise redis.ConnectionError("injected")

    monkeypatch.setattr(limiter.counter, "hit", fail)
    assert client.get("/v1/categories").status_code == 200
    assert storage_errors(limited) == 1
    monkeypatch.setattr(limiter.counter, "hit", real_hit)
    assert "RateLimit" not in client.get("/v1/categories").headers  # breaker still open
    now[0] = 6.0
    assert remaining(client.get("/v1/categories")) == 2


def test_a_malformed_limit_refuses_to_start(make_app):
    with pytest.raises(ConfigError, match="SHELF_RATE_LIMIT_WRITES"):
        make_app(rate_limit_writes="lots")


def test_settings_read_the_rate_limit_variables():
    settings = Settings.from_env(
        {
            "SHELF_RATE_LIMITS_ENABLED": "false",
            "SHELF_RATE_LIMIT_READS": "10/second",
            "SHELF_RATE_LIMIT_WRITES": "5/minute",
            "SHELF_RATE_LIMIT_REDIS_URL": "redis://limits:6379/3",
            "SHELF_RATE_LIMIT_PREFIX": "edge",
        }
    )
    assert not settings.rate_limits_enabled
    assert (settings.rate_limit_reads, settings.rate_limit_writes) == ("10/second", "5/minute")
    assert (settings.rate_limit_redis_url, settings.rate_limit_prefix) == ("redis://limits:6379/3", "edge")
    defaults = Settings.from_env({})
    assert defaults.rate_limits_enabled and defaults.rate_limit_redis_url == ""
    assert (defaults.rate_limit_reads, defaults.rate_limit_writes) == ("1200/minute", "120/minute")
