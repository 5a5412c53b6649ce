"""Region basics against the real Redis: hits, misses, single flight and the stale-set race."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from cache.entry import decode
from cache.region import State

from .support import CountingCreator, commands_sent, sample

STORES = ("redis", "cluster")
"""Each test runs on the single Redis and on a Redis Cluster (``tests/cache/conftest.py``)."""


def test_miss_then_hit(region, registry):
    key, creator = region.keys.product(1), CountingCreator(b'{"id": 1}')
    first = region.get_or_create(key, creator)
    second = region.get_or_create(key, creator)
    assert (first.state, second.state, creator.calls) == (State.MISS, State.HIT, 1)
    assert second.entry == first.entry
    assert second.entry.body == b'{"id": 1}' and second.entry.etag.startswith('"')
    assert (sample(registry, "misses", "product"), sample(registry, "hits", "product")) == (1, 1)
    assert sample(registry, "fills", "product") == 1


def test_result_reports_compute_and_cache_time(region):
    result = region.get_or_create(region.keys.product(2), CountingCreator(delay=0.03))
    assert result.compute_ms >= 25
    assert 0 <= result.cache_ms < result.compute_ms
    assert result.entry.compute_ms == result.compute_ms


def test_entry_is_stored_with_the_hard_ttl(region, redis_db, clock):
    key = region.keys.product(3)
    entry = region.get_or_create(key, CountingCreator()).entry
    hard, soft = region.config.ttls["product"].hard, region.config.ttls["product"].soft
    assert hard * 1000 - 2000 < redis_db.pttl(key.entry) <= hard * 1000
    assert entry.soft_expires_at == clock.now + soft
    assert decode(redis_db.get(key.entry)) == entry
    assert not redis_db.exists(key.lease)


def test_jitter_shortens_ttls_by_at_most_the_configured_fraction(make_region, redis_db):
    region = make_region(jitter=0.1, random=lambda: 0.5)
    key = region.keys.product(4)
    entry = region.get_or_create(key, CountingCreator()).entry
    ttl = region.config.ttls["product"]
    assert entry.soft_expires_at - entry.created_at == pytest.approx(ttl.soft * 0.95)
    assert redis_db.pttl(key.entry) <= ttl.hard * 950


@pytest.mark.standalone_redis
@pytest.mark.parametrize("scoped", [False, True], ids=["product GET", "list page MGET"])
def test_a_fresh_hit_costs_exactly_one_redis_command(region, backend, cache_redis_url, scoped):
    key = region.keys.reviews(1, {"page": 1}) if scoped else region.keys.product(5)
    region.get_or_create(key, CountingCreator())

    def hit():
        return region.get_or_create(key, CountingCreator())

    sent = commands_sent(backend.client, cache_redis_url, hit)
    assert len(sent) == 1
    assert sent[0].split()[0] == ("MGET" if scoped else "GET")


@pytest.mark.standalone_redis
def test_a_write_invalidation_is_one_pipeline_and_one_barrier(region, backend, redis_db, cache_redis_url):
    product, page = region.keys.product(7), region.keys.reviews(1, {"page": 1})
    for key in (product, page):
        region.get_or_create(key, CountingCreator())

    def write():
        region.invalidate([product], [page.generation])

    sent = commands_sent(backend.client, cache_redis_url, write)
    assert [command.split()[0] for command in sent] == ["DEL", "INCRBY", "PEXPIRE", "PING"]
    assert not redis_db.exists(product.entry) and redis_db.get(page.generation) == b"1"
    assert 0 < redis_db.pttl(page.generation) <= region.config.generation_ttl * 1000


def test_cold_key_stampede_calls_the_creator_once(make_region, registry):
    # A roomy wait budget: a loaded test machine must not turn this into a budget test.
    region = make_region(wait_budget_ms=3000)
    key, creator = region.keys.product(6), CountingCreator(b"slow", delay=0.05)
    start = threading.Barrier(100)

    def request():
        start.wait()
        return region.get_or_create(key, creator)

    with ThreadPoolExecutor(100) as pool:
        results = list(pool.map(lambda _: request(), range(100)))
    diagnosis = (Counter(r.state for r in results), sample(registry, "lock_wait_timeouts", "product"))
    assert creator.calls == 1, diagnosis
    assert [r.state for r in results].count(State.MISS) == 1
    assert {r.entry.body for r in results} == {b"slow"}
    assert sample(registry, "lock_waits", "product") >= 1
    assert sample(registry, "lock_wait_timeouts", "product") == 0


def test_waiter_past_its_budget_computes_without_storing(make_region, redis_db, registry):
    region = make_region(wait_budget_ms=50)
    key = region.keys.product(7)
    redis_db.set(key.lease, "someone-else", px=5000)
    creator = CountingCreator(b"mine")
    result = region.get_or_create(key, creator)
    assert (result.state, result.entry.body, creator.calls) == (State.MISS, b"mine", 1)
    assert not redis_db.exists(key.entry)
    assert sample(registry, "lock_wait_timeouts", "product") == 1


def test_a_failing_creator_releases_its_lease(region, redis_db):
    key = region.keys.product(8)

    def boom():
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError):
        region.get_or_create(key, boom)
    assert not redis_db.exists(key.lease)


def _race(region, key, creator, write) -> None:
    """Reader misses, takes the lease and reads "old"; ``write`` runs; then the reader stores."""
    creator.gate = threading.Event()
    reader = ThreadPoolExecutor(1)
    pending = reader.submit(region.get_or_create, key, creator)
    assert creator.entered.wait(5)
    creator.body = b"new"  # the database now holds the new value
    write()
    creator.gate.set()
    result = pending.result(5)
    reader.shutdown()
    assert (result.state, result.entry.body) == (State.MISS, b"old")


def test_invalidate_during_a_fill_rejects_the_stale_set(region, registry, redis_db):
    key, creator = region.keys.product(9), CountingCreator(b"old")
    _race(region, key, creator, lambda: region.invalidate([key]))
    assert sample(registry, "fill_rejected", "product") == 1
    assert not redis_db.exists(key.entry)
    fresh = region.get_or_create(key, creator)
    assert (fresh.state, fresh.entry.body) == (State.MISS, b"new")
    assert region.get_or_create(key, creator).state == State.HIT


def test_a_scope_invalidation_during_a_list_fill_rejects_the_stale_set(region, registry):
    key, creator = region.keys.reviews(1, {"page": 1}), CountingCreator(b"old")
    _race(region, key, creator, lambda: region.invalidate((), [region.keys.reviews_generation(1)]))
    assert sample(registry, "fill_rejected", "reviews") == 1
    fresh = region.get_or_create(key, creator)
    assert (fresh.state, fresh.entry.body, fresh.entry.generation) == (State.MISS, b"new", 1)
    assert region.get_or_create(key, creator).entry.body == b"new"


def test_a_scope_invalidation_turns_every_page_of_the_scope_into_a_miss(region):
    pages = [region.keys.reviews(1, {"page": n}) for n in range(3)]
    other_scope = region.keys.reviews(2, {"page": 0})
    for key in [*pages, other_scope]:
        region.get_or_create(key, CountingCreator(b"v1"))
    region.invalidate((), [region.keys.reviews_generation(1)])
    states = [region.get_or_create(key, CountingCreator(b"v2")).state for key in pages]
    assert states == [State.MISS] * 3
    assert region.get_or_create(other_scope, CountingCreator()).state == State.HIT


def test_one_invalidation_drops_a_scope_and_several_keys(region):
    keys = [region.keys.reviews(5, {"page": 1}), region.keys.product(5), region.keys.category_tree()]
    for key in keys:
        region.get_or_create(key, CountingCreator())
    region.invalidate((), [region.keys.reviews_generation(5)])
    region.invalidate(keys[1:])
    assert [region.get_or_create(k, CountingCreator()).state for k in keys] == [State.MISS] * 3


def test_corrupt_values_are_misses_that_get_repaired(region, redis_db, registry):
    key = region.keys.category("shoes")
    redis_db.set(key.entry, b"\x80\x04not an entry")
    result = region.get_or_create(key, CountingCreator(b"good"))
    assert (result.state, result.entry.body) == (State.MISS, b"good")
    assert sample(registry, "corrupt_entries", "category") == 1
    assert region.get_or_create(key, CountingCreator()).state == State.HIT


def test_truncated_value_is_a_miss(region, redis_db, registry):
    key = region.keys.product(10)
    region.get_or_create(key, CountingCreator(b"x" * 100))
    redis_db.set(key.entry, redis_db.get(key.entry)[:-10])
    assert region.get_or_create(key, CountingCreator()).state == State.MISS
    assert sample(registry, "corrupt_entries", "product") == 1
