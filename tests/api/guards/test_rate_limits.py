"""Rate limits: read and write budgets, the 429 problem and its headers, exemptions, failing open."""

from __future__ import annotations

import math
import random
import re
import secrets
import threading
import time
from urllib.parse import urlsplit

import pytest
import redis

from api.guards.rate_limits import (
    EXTENSION_KEY,
    LEASE_SCRIPT,
    Grant,
    Leases,
    RedisCounter,
    budget,
    lease_size,
)
from cache.breaker import Breaker
from catalog.config import ConfigError, Settings
from tests.cache.support import FakeClock, commands_sent
from tests.conftest import log_records

TOKEN_A, TOKEN_B = "token-a-" + "x" * 16, "token-b-" + "y" * 16
RATE_LIMIT = re.compile(r'^"(?P<name>[a-z0-9-]+)";r=(?P<r>\d+);t=(?P<t>\d+)$')


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def from_ip(address: str) -> dict:
    return {"REMOTE_ADDR": address}


def remaining(response) -> int:
    return int(RATE_LIMIT.match(response.headers["RateLimit"])["r"])


def script_calls(app, redis_url: str, action) -> int:
    """The limiter's script calls while ``action`` runs (the script is loaded first: one EVALSHA each)."""
    client = app.extensions[EXTENSION_KEY].counter.client
    client.script_load(LEASE_SCRIPT)
    return sum(command.split()[0] == "EVALSHA" for command in commands_sent(client, redis_url, action))


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
    assert body["type"] == "about:blank" and "reads" in body["detail"]
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


@pytest.mark.parametrize(
    "path", ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/assets/swagger-ui-bundle.js"]
)
def test_probes_metrics_and_docs_are_exempt(make_app, path):
    client = make_app(rate_limit_reads="1/minute").test_client()
    responses = [client.get(path) for _ in range(3)]
    for response in responses:
        response.close()  # the docs' files are file responses
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
    app = make_app(rate_limit_reads="1/minute", queue_redis_url=f"redis://127.0.0.1:{unused_port}/0")
    client = app.test_client()
    responses = [client.get("/v1/categories") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert all("RateLimit" not in r.headers for r in responses)
    warnings = [line for line in log_records(log_output()) if line["logger"] == "shelf.limits"]
    assert len(warnings) == 1 and "serving without limits" in warnings[0]["msg"]
    # One failure opens the breaker: the next requests do not wait on Redis at all.
    assert storage_errors(app) == 1


def test_a_small_budget_costs_one_script_call_per_request_whatever_the_windows(make_app, redis_url):
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
            "SHELF_KEY_PREFIX": "edge",
        }
    )
    assert not settings.rate_limits_enabled
    assert (settings.rate_limit_reads, settings.rate_limit_writes) == ("10/second", "5/minute")
    assert settings.limits_prefix == "edge:limits"
    defaults = Settings.from_env({})
    assert defaults.rate_limits_enabled and defaults.limits_prefix == "shelf:limits"
    assert (defaults.rate_limit_reads, defaults.rate_limit_writes) == ("1200/minute", "120/minute")


@pytest.mark.parametrize(
    ("value", "lease"),
    [
        ("3/minute", 1),
        ("120/minute", 1),
        ("20/second;1200/minute", 1),
        ("199/minute", 1),
        ("200/minute", 2),
        ("1200/minute", 12),
        ("100000/hour;2000/second", 20),
        ("1000000000/minute", 100),
    ],
)
def test_a_lease_is_a_hundredth_of_the_smallest_window_at_most_100(value, lease):
    assert lease_size(budget("reads", "SHELF_RATE_LIMIT_READS", value)) == lease


def test_a_small_budget_is_exact_at_one_script_call_per_request(make_app, redis_url):
    app = make_app(rate_limit_reads="120/minute")
    client = app.test_client()
    responses = []
    calls = script_calls(
        app, redis_url, lambda: responses.extend(client.get("/v1/categories") for _ in range(121))
    )
    assert calls == 121
    assert [r.status_code for r in responses] == [200] * 120 + [429]
    assert [remaining(r) for r in responses] == [*range(119, -1, -1), 0]


@pytest.mark.parametrize(("value", "lease"), [("1200/minute", 12), ("1000000000/minute", 100)])
def test_a_large_budget_costs_one_script_call_per_lease(make_app, redis_url, value, lease):
    app = make_app(rate_limit_reads=value)
    client = app.test_client()
    requests = lease * 5 // 2
    responses = []
    calls = script_calls(
        app, redis_url, lambda: responses.extend(client.get("/v1/categories") for _ in range(requests))
    )
    assert calls == math.ceil(requests / lease)
    amount = int(value.split("/")[0])
    # With one process, what remains is still exact: Redis's count less the tokens held here.
    assert [remaining(r) for r in responses] == [amount - n for n in range(1, requests + 1)]


def test_two_processes_sharing_a_budget_never_exceed_it(make_app, redis_client):
    prefix = "test-shared-" + secrets.token_hex(4)
    apps = [make_app(rate_limit_reads="500/minute", rate_limit_prefix=prefix) for _ in range(2)]
    clients = [app.test_client() for app in apps]
    order = random.Random(7).choices([0, 1], weights=[1, 3], k=1500)
    statuses = [clients[i].get("/v1/categories").status_code for i in order]
    assert statuses.count(200) <= 500
    lease = 5
    assert statuses.index(429) >= 500 - (2 - 1) * (lease - 1)
    (key,) = redis_client.keys(f"{prefix}:*:reads:*")
    assert int(redis_client.get(key)) == 500


def test_a_client_is_refused_early_by_at_most_the_tokens_another_process_holds(make_app):
    prefix = "test-shared-" + secrets.token_hex(4)
    first, second = (
        make_app(rate_limit_reads="500/minute", rate_limit_prefix=prefix).test_client() for _ in range(2)
    )
    assert first.get("/v1/categories").status_code == 200  # leases 5, holds 4
    statuses = [second.get("/v1/categories").status_code for _ in range(500)]
    assert statuses.index(429) == 495  # refused 4 requests early: the lease - 1 the other holds
    assert [first.get("/v1/categories").status_code for _ in range(5)] == [200] * 4 + [429]


def test_what_remains_never_rises_for_a_client_spread_over_processes(make_app):
    """Each process hears the other's leases, and counts its own unspent tokens as remaining only
    while it is the one process holding some: ``r`` falls, and is at most the two processes'
    unspent tokens below what the client has left."""
    prefix = "test-shared-" + secrets.token_hex(4)
    clients = [
        make_app(rate_limit_reads="1200/minute", rate_limit_prefix=prefix).test_client() for _ in range(2)
    ]
    order = random.Random(3).choices([0, 1], k=600)
    seen = [remaining(clients[i].get("/v1/categories")) for i in order]
    assert seen == sorted(seen, reverse=True)
    lease = 12
    assert all(0 <= (1200 - served) - r <= 2 * (lease - 1) for served, r in enumerate(seen, start=1))


def test_news_goes_only_to_the_processes_a_client_is_spread_over(make_app, redis_client):
    prefix = "test-shared-" + secrets.token_hex(4)
    one, other = (
        make_app(rate_limit_reads="1200/minute", rate_limit_prefix=prefix).test_client() for _ in range(2)
    )
    watcher = redis_client.pubsub(ignore_subscribe_messages=True)
    watcher.psubscribe(f"{prefix}:news:*")
    watcher.get_message(timeout=1)
    alone = [one.get("/v1/categories") for _ in range(30)]
    assert watcher.get_message(timeout=0.2) is None  # one process: no message at all
    assert [remaining(r) for r in alone] == list(range(1199, 1169, -1))  # and exact
    assert remaining(other.get("/v1/categories")) == 1200 - 36 - 12  # the first's 6 unspent count as spent
    news = watcher.get_message(timeout=1)
    assert news["data"] == b"48 reads %d ip:127.0.0.1" % (1_700_000_000 // 60)  # to the first process only
    assert watcher.get_message(timeout=0.2) is None
    assert remaining(one.get("/v1/categories")) == 1200 - 48  # it heard: its own unspent no longer count
    watcher.close()


def test_without_lease_news_a_process_leases_one_token_at_a_time(make_app, redis_url, monkeypatch):
    """A Redis that refuses pub/sub (an ACL): no news would reach this process, so it holds nothing."""
    app = make_app(rate_limit_reads="1200/minute")
    monkeypatch.setattr(app.extensions[EXTENSION_KEY].leases.news, "channel", lambda: "")
    client = app.test_client()
    responses = []
    assert (
        script_calls(app, redis_url, lambda: responses.extend(client.get("/v1/categories") for _ in range(5)))
        == 5
    )
    assert [remaining(r) for r in responses] == [1199, 1198, 1197, 1196, 1195]


def test_handing_back_never_lowers_a_count(redis_client):
    """A lease voided by the short window's rollover goes back to the hour, but only as far as the
    new grant takes it up again: a count that fell would make what remains of the hour rise."""
    counter = RedisCounter(redis_client, "test-hand-back-" + secrets.token_hex(4))
    windows, key, now = budget("reads", "x", "1000/second;100000/hour"), ("ip:10.0.0.1", "reads"), 7200.0
    assert counter.hit(key, windows, now, want=10).counts == (10, 10)
    assert counter.hit(key, windows, now + 1, want=1000).counts == (1000, 1010)  # another process: all of it
    grant = counter.hit(key, windows, now + 1, want=10, handed_back=(0, 7))
    assert (grant.granted, grant.counts) == (0, (1000, 1010))
    grant = counter.hit(key, windows, now + 2, want=10, handed_back=(0, 7))
    assert (grant.granted, grant.counts) == (10, (10, 1013))


def test_threads_of_one_process_share_leases_and_never_overspend(make_app):
    app = make_app(rate_limit_reads="500/minute")
    statuses: list[int] = []

    def run() -> None:
        client = app.test_client()
        statuses.extend(client.get("/v1/categories").status_code for _ in range(200))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(statuses) == 800
    assert statuses.count(200) == 500  # not more, and no token lost when two threads refill at once


def test_a_burst_of_concurrent_first_requests_leases_once(make_app, redis_client, monkeypatch):
    """While one thread leases for a client, the others ask only for their own token."""
    app = make_app(rate_limit_reads="1200/minute")
    counter = app.extensions[EXTENSION_KEY].counter
    real_hit, arrived = counter.hit, threading.Barrier(20, timeout=10)

    def slow_hit(key, windows, now, want, handed_back, channel):
        grant = real_hit(key, windows, now, want, handed_back, channel)
        if want > 1:
            time.sleep(0.2)  # the leader's lease is slow: the other 19 threads ask Redis meanwhile
        return grant

    monkeypatch.setattr(counter, "hit", slow_hit)

    def run() -> None:
        client = app.test_client()
        arrived.wait()
        assert client.get("/v1/categories").status_code == 200

    threads = [threading.Thread(target=run) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    (key,) = redis_client.keys(f"{app.config['SHELF'].limits_prefix}:*:reads:*")
    assert 20 <= int(redis_client.get(key)) <= lease_size(budget("reads", "x", "1200/minute")) + 19


@pytest.mark.parametrize(("value", "step"), [("1000/minute", 60), ("1000/second;100000/hour", 1)])
def test_a_rolled_over_window_voids_the_lease(make_app, redis_url, value, step):
    app = make_app(rate_limit_reads=value)
    clock = FakeClock()
    app.extensions[EXTENSION_KEY].clock = clock
    client = app.test_client()
    responses = []

    def get() -> None:
        responses.append(client.get("/v1/categories"))

    assert script_calls(app, redis_url, get) == 1
    assert script_calls(app, redis_url, get) == 0  # spent from the lease
    clock.advance(step)
    assert script_calls(app, redis_url, get) == 1
    assert (
        responses[-1]
        .headers["RateLimit"]
        .startswith(f'"{app.extensions[EXTENSION_KEY].reads[0].name}";r=999;')
    )


def test_a_long_window_gets_back_the_tokens_a_short_one_voided(make_app, redis_client):
    app = make_app(rate_limit_reads="1000/second;100000/hour")
    clock = FakeClock()
    app.extensions[EXTENSION_KEY].clock = clock
    client = app.test_client()
    for _ in range(3):
        client.get("/v1/categories")  # one lease of 10 taken, 3 spent
    clock.advance(1)
    response = client.get("/v1/categories")  # the 7 left are handed back to the hour
    prefix = app.config["SHELF"].limits_prefix
    (hour_key,) = redis_client.keys(f"{prefix}:*:reads-3600s:*")
    assert int(redis_client.get(hour_key)) == 3 + 10
    assert re.fullmatch(r'"reads-1s";r=999;t=1, "reads-3600s";r=99996;t=\d+', response.headers["RateLimit"])


def test_a_held_lease_is_spent_while_redis_is_down_then_limits_fail_open(
    make_app, redis_url, redis_proxy, log_output
):
    proxied = urlsplit(redis_url)._replace(netloc=f"127.0.0.1:{redis_proxy.port}").geturl()
    app = make_app(rate_limit_reads="1000/minute", queue_redis_url=proxied)
    client = app.test_client()
    for address in ("10.0.0.1", "10.0.0.2"):
        assert remaining(client.get("/v1/categories", environ_base=from_ip(address))) == 999
    redis_proxy.down()
    held = [client.get("/v1/categories", environ_base=from_ip("10.0.0.1")) for _ in range(9)]
    # Its lease news is lost too, so another process could lease unheard: the tokens held here no
    # longer count as remaining, and what remains stays at Redis's last count.
    assert [remaining(r) for r in held] == [990] * 9
    assert storage_errors(app) == 0
    unlimited = client.get("/v1/categories", environ_base=from_ip("10.0.0.1"))  # lease spent: Redis asked
    assert unlimited.status_code == 200 and "RateLimit" not in unlimited.headers
    assert storage_errors(app) == 1
    warnings = [line["msg"] for line in log_records(log_output()) if line["logger"] == "shelf.limits"]
    assert len(warnings) == 2 and "news lost" in warnings[0] and "serving without limits" in warnings[1]
    # The breaker is open now, yet the other client's lease is still good.
    assert remaining(client.get("/v1/categories", environ_base=from_ip("10.0.0.2"))) == 990


def test_the_lease_table_stays_bounded():
    windows = budget("reads", "SHELF_RATE_LIMIT_READS", "1000/minute")
    leases = Leases(limit=10)
    for n in range(10):
        leases.keep((f"ip:{n}", "reads"), windows, Grant((0,), 10, (10,)), now=30)
    assert len(leases) == 10
    leases.keep(("ip:new", "reads"), windows, Grant((1,), 10, (10,)), now=90)  # the others are stale
    assert len(leases) == 1
    for n in range(9):
        leases.keep((f"ip:{n}", "reads"), windows, Grant((1,), 10, (10,)), now=90)
    leases.keep(("ip:more", "reads"), windows, Grant((1,), 10, (10,)), now=90)  # all live: cleared
    assert len(leases) == 1
    assert leases.spend(("ip:more", "reads"), windows, now=90) is not None
