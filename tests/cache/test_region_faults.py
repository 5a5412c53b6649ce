"""Degradation: a refusing or slow Redis yields BYPASS, trips the breaker, and the breaker heals."""

from __future__ import annotations

import logging
import time

import pytest

from cache.api import CacheUnavailable, CircuitOpen
from cache.backends.redis import RedisBackend
from cache.breaker import BreakerState
from cache.region import State

from .support import CountingCreator, DelayingProxy, FailingOn, SwitchableBackend, closed_port, sample


@pytest.fixture
def dead_backend():
    backend = RedisBackend.from_url(f"redis://127.0.0.1:{closed_port()}/14")
    yield backend
    backend.close()


@pytest.fixture
def flaky(backend, dead_backend) -> SwitchableBackend:
    return SwitchableBackend(live=backend, dead=dead_backend)


def test_refused_connection_is_a_bypass_with_metric_and_warning(make_region, dead_backend, registry, caplog):
    region, creator = make_region(dead_backend), CountingCreator(b"from db")
    with caplog.at_level(logging.WARNING, logger="shelf.cache"):
        result = region.get_or_create(region.keys.product(1), creator)
    assert (result.state, result.entry.body, creator.calls) == (State.BYPASS, b"from db", 1)
    assert sample(registry, "bypass", "product") == 1
    assert sample(registry, "redis_errors", "product") == 1
    assert any("cache unavailable" in record.getMessage() for record in caplog.records)


def test_outage_warnings_are_rate_limited(make_region, dead_backend, caplog):
    region = make_region(dead_backend, breaker_threshold=100)
    with caplog.at_level(logging.WARNING, logger="shelf.cache"):
        for n in range(20):
            region.get_or_create(region.keys.product(n), CountingCreator())
    assert len([r for r in caplog.records if "cache unavailable" in r.getMessage()]) == 1


def test_breaker_opens_after_threshold_and_then_skips_redis(make_region, flaky, registry):
    region = make_region(flaky)
    for n in range(5):
        assert region.get_or_create(region.keys.product(n), CountingCreator()).state == State.BYPASS
    assert region.breaker.state is BreakerState.OPEN
    assert sample(registry, "breaker_state") == BreakerState.OPEN
    calls = flaky.calls
    assert region.get_or_create(region.keys.product(9), CountingCreator()).state == State.BYPASS
    assert flaky.calls == calls
    assert sample(registry, "redis_errors", "product") == 5


def test_half_open_probe_closes_the_breaker(make_region, flaky, clock, registry):
    region = make_region(flaky)
    for n in range(5):
        region.get_or_create(region.keys.product(n), CountingCreator())
    flaky.down = False
    assert region.get_or_create(region.keys.product(1), CountingCreator()).state == State.BYPASS
    clock.advance(region.config.breaker_cooldown)
    assert region.get_or_create(region.keys.product(1), CountingCreator()).state == State.MISS
    assert region.breaker.state is BreakerState.CLOSED
    assert sample(registry, "breaker_state") == BreakerState.CLOSED
    assert region.get_or_create(region.keys.product(1), CountingCreator()).state == State.HIT


def test_failed_probe_reopens_the_breaker(make_region, flaky, clock):
    region = make_region(flaky, breaker_threshold=1)
    region.get_or_create(region.keys.product(1), CountingCreator())
    clock.advance(region.config.breaker_cooldown)
    region.get_or_create(region.keys.product(1), CountingCreator())
    assert region.breaker.state is BreakerState.OPEN


def test_slow_redis_costs_at_most_the_timeout(make_region, cache_redis_url, redis_db):
    host = redis_db.connection_pool.connection_kwargs["host"]
    proxy = DelayingProxy((host, redis_db.connection_pool.connection_kwargs["port"]), delay=0.5)
    slow = RedisBackend.from_url(f"redis://127.0.0.1:{proxy.port}/14", timeout_ms=50)
    try:
        region, creator = make_region(slow), CountingCreator(b"from db")
        started = time.monotonic()
        result = region.get_or_create(region.keys.product(1), creator)
        elapsed = time.monotonic() - started
    finally:
        slow.close()
        proxy.close()
    assert (result.state, result.entry.body, creator.calls) == (State.BYPASS, b"from db", 1)
    assert elapsed < 1.0


def test_a_failed_fill_still_serves_the_computed_value(make_region, backend, registry):
    region, creator = make_region(FailingOn(backend, "fill")), CountingCreator(b"computed")
    result = region.get_or_create(region.keys.product(1), creator)
    assert (result.state, result.entry.body, creator.calls) == (State.BYPASS, b"computed", 1)
    assert sample(registry, "redis_errors", "product") == 1


def test_a_failed_lease_on_a_stale_entry_serves_it_stale(make_region, backend, clock):
    key = make_region().keys.product(1)
    make_region().get_or_create(key, CountingCreator(b"old"))
    clock.advance(10_000)
    result = make_region(FailingOn(backend, "acquire")).get_or_create(key, CountingCreator(b"new"))
    assert (result.state, result.entry.body) == (State.STALE, b"old")


def test_invalidations_and_purges_report_failures_for_the_outbox(make_region, flaky):
    region = make_region(flaky)
    with pytest.raises(CacheUnavailable):
        region.invalidate([region.keys.product(1)])
    with pytest.raises(CacheUnavailable):
        region.invalidate((), [region.keys.reviews_generation(1)])
    with pytest.raises(CacheUnavailable):
        region.purge()


def test_invalidate_while_the_breaker_is_open_fails_fast(make_region, flaky):
    region = make_region(flaky, breaker_threshold=1)
    region.get_or_create(region.keys.product(1), CountingCreator())
    calls = flaky.calls
    with pytest.raises(CircuitOpen):
        region.invalidate([region.keys.product(1)])
    assert flaky.calls == calls


def test_peek_leaves_store_errors_to_get_or_create(make_region, dead_backend, registry):
    region = make_region(region_backend=dead_backend)
    key = region.keys.product(17)
    assert region.peek(key).hit is None
    assert sample(registry, "redis_errors", "product") == 0  # counted once, by the read that degrades
    assert region.breaker.state.value == 0


def test_suspended_reads_compute_store_nothing_and_let_invalidations_through(region, redis_db, registry):
    key = region.keys.product(21)
    region.get_or_create(key, CountingCreator(b"cached"))
    region.suspend_reads()
    computed = CountingCreator(b"from the database")
    result = region.get_or_create(key, computed)
    assert (result.state, result.entry.body, computed.calls) == (State.BYPASS, b"from the database", 1)
    assert region.peek(key).hit is None
    with pytest.raises(CacheUnavailable):
        region.get_many([key])
    region.invalidate([key])  # the owed invalidation is delivered while reads are suspended
    assert not redis_db.exists(key.entry)
    region.resume_reads()
    assert region.get_or_create(key, CountingCreator(b"refilled")).state == State.MISS
    assert region.get_or_create(key, CountingCreator(b"never")).state == State.HIT
    assert sample(registry, "bypass", "product") == 1
