"""Soft expiry: stale-while-revalidate, XFetch early refresh, and stale-if-error."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from cache.region import State

from .support import CountingCreator, failing, sample

SOFT = 300  # the product soft TTL in the default config

STORES = ("redis", "cluster")
"""Each test runs on the single Redis and on a Redis Cluster (``tests/cache/conftest.py``)."""


class DatabaseDown(Exception):
    pass


@pytest.fixture
def stale_key(region, clock):
    """A product entry holding b"old", made stale by moving the clock past its soft expiry."""
    key = region.keys.product(1)
    region.get_or_create(key, CountingCreator(b"old", delay=0.01))
    clock.advance(SOFT + 1)
    return key


def test_stale_entry_is_served_at_once_while_one_caller_refreshes(region, stale_key, registry):
    refresher = CountingCreator(b"new")
    refresher.gate = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(region.get_or_create, stale_key, refresher)
        assert refresher.entered.wait(5)
        others = CountingCreator(b"never")
        served = [region.get_or_create(stale_key, others) for _ in range(5)]
        refresher.gate.set()
        refreshed = pending.result(5)
    assert [(r.state, r.entry.body) for r in served] == [(State.STALE, b"old")] * 5
    assert others.calls == 0
    assert (refreshed.state, refreshed.entry.body) == (State.MISS, b"new")
    assert region.get_or_create(stale_key, others).entry.body == b"new"
    assert sample(registry, "stale", "product") == 5


def test_concurrent_callers_on_a_stale_key_trigger_one_refresh(region, stale_key):
    creator, start = CountingCreator(b"new"), threading.Barrier(20)
    creator.gate = threading.Event()  # the refresh finishes only once the other 19 have been served

    def request():
        start.wait()
        return region.get_or_create(stale_key, creator)

    with ThreadPoolExecutor(20) as pool:
        futures = [pool.submit(request) for _ in range(20)]
        deadline = time.monotonic() + 5
        while sum(f.done() for f in futures) < 19 and time.monotonic() < deadline:
            time.sleep(0.005)
        creator.gate.set()
        results = [f.result(5) for f in futures]
    assert creator.calls == 1
    assert sorted(r.state for r in results) == sorted([State.MISS] + [State.STALE] * 19)


def test_stale_entry_is_kept_until_the_hard_ttl(region, stale_key, redis_db):
    assert redis_db.pttl(stale_key.entry) > (region.config.ttls["product"].hard - 10) * 1000


def test_xfetch_refreshes_a_hot_key_before_it_goes_stale(make_region, clock):
    draw = [1.0]  # ln(1) = 0: no head start
    region = make_region(random=lambda: draw[0])
    key = region.keys.product(2)
    region.get_or_create(key, CountingCreator(b"v1", delay=0.02))
    clock.advance(SOFT - 5)  # still fresh: 5 s before soft expiry
    assert region.get_or_create(key, CountingCreator()).state == State.HIT
    draw[0] = 1e-300  # the luckiest draw: a head start of ~690 x the 20 ms compute time
    early = region.get_or_create(key, CountingCreator(b"v2"))
    assert (early.state, early.entry.body) == (State.MISS, b"v2")


def test_xfetch_head_start_scales_with_compute_time(make_region, clock):
    region = make_region(random=lambda: 0.5)  # -ln(0.5) ~ 0.69: head start ~ 0.69 x compute time
    key = region.keys.product(3)
    region.get_or_create(key, CountingCreator(delay=0.02))
    clock.advance(SOFT - 5)
    assert region.get_or_create(key, CountingCreator()).state == State.HIT


def test_failed_early_refresh_serves_the_fresh_entry(make_region, clock):
    region = make_region(random=lambda: 1e-300)
    key = region.keys.product(4)
    region.get_or_create(key, CountingCreator(b"v1", delay=0.02))
    clock.advance(SOFT - 5)
    result = region.get_or_create(key, failing(RuntimeError("boom")))
    assert (result.state, result.entry.body, result.stale_if_error) == (State.HIT, b"v1", False)


def test_stale_if_error_serves_the_stale_entry_and_frees_the_lease(region, stale_key, redis_db):
    result = region.get_or_create(stale_key, failing(DatabaseDown()), allow_stale_on_error=(DatabaseDown,))
    assert (result.state, result.entry.body, result.stale_if_error) == (State.STALE, b"old", True)
    assert not redis_db.exists(stale_key.lease)


def test_errors_not_listed_are_raised_even_with_a_stale_entry(region, stale_key):
    with pytest.raises(RuntimeError):
        region.get_or_create(stale_key, failing(RuntimeError()), allow_stale_on_error=(DatabaseDown,))


def test_stale_if_error_needs_an_entry(region):
    key = region.keys.product(5)
    with pytest.raises(DatabaseDown):
        region.get_or_create(key, failing(DatabaseDown()), allow_stale_on_error=(DatabaseDown,))
