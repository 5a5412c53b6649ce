"""Negative caching: 404s are cached briefly, capped per window, and dropped by invalidation."""

from __future__ import annotations

from cache.region import State

from .support import CountingCreator, sample

STORES = ("redis", "cluster")
"""Each test runs on the single Redis and on a Redis Cluster (``tests/cache/conftest.py``)."""


def test_a_404_is_cached_with_the_negative_ttl(region, redis_db):
    key, missing = region.keys.product(404), CountingCreator(b'{"title": "Not Found"}', status=404)
    first = region.get_or_create(key, missing)
    second = region.get_or_create(key, missing)
    assert (first.state, second.state, second.entry.status, missing.calls) == (State.MISS, State.HIT, 404, 1)
    assert 25_000 < redis_db.pttl(key.entry) <= 30_000


def test_negative_entries_are_capped_per_window(make_region, registry, clock):
    region = make_region(negative_cap=3)
    keys = [region.keys.product(n) for n in range(5)]
    first = [region.get_or_create(k, CountingCreator(status=404)).state for k in keys]
    again = [region.get_or_create(k, CountingCreator(status=404)).state for k in keys]
    assert first == [State.MISS] * 5
    assert again == [State.HIT] * 3 + [State.MISS] * 2
    assert sample(registry, "negative_capped", "product") == 4  # two ids, turned away twice each
    clock.advance(region.config.negative_window)
    assert region.get_or_create(keys[4], CountingCreator(status=404)).state == State.MISS
    assert region.get_or_create(keys[4], CountingCreator(status=404)).state == State.HIT


def test_capped_404_releases_its_lease(make_region, redis_db):
    region = make_region(negative_cap=0)
    key = region.keys.product(1)
    region.get_or_create(key, CountingCreator(status=404))
    assert not redis_db.exists(key.entry) and not redis_db.exists(key.lease)


def test_invalidate_removes_the_negative_entry(region):
    key = region.keys.product(77)
    region.get_or_create(key, CountingCreator(status=404))
    region.invalidate([key])
    created = region.get_or_create(key, CountingCreator(b'{"id": 77}'))
    assert (created.state, created.entry.status, created.entry.body) == (State.MISS, 200, b'{"id": 77}')


def test_positive_entries_do_not_use_the_negative_budget(make_region):
    region = make_region(negative_cap=0)
    key = region.keys.product(2)
    region.get_or_create(key, CountingCreator())
    assert region.get_or_create(key, CountingCreator()).state == State.HIT
