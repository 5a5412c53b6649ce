"""Backend contract: the Redis backend's atomic lease and fill rules, and the null backend."""

from __future__ import annotations

import pytest

from cache.api import NO_VALUE, Fill
from cache.backends.null import NullBackend
from cache.config import CacheConfig
from cache.region import Region, State
from catalog.resources import CatalogKeys, ttls

from .support import CountingCreator, payload

KEYS = CatalogKeys()

STORES = ("redis", "cluster")
"""Each test runs on the single Redis and on a Redis Cluster (``tests/cache/conftest.py``)."""


def test_acquire_is_exclusive_and_reads_entry_and_generation(backend, redis_db):
    key = KEYS.reviews(1, {"page": 1})
    redis_db.set(key.generation, 4)
    redis_db.set(key.entry, b"value")
    lookup = backend.acquire(key, "token-a", 5000)
    assert (lookup.raw, lookup.generation) == (b"value", 4)
    assert backend.acquire(key, "token-b", 5000) is None
    assert 0 < redis_db.pttl(key.lease) <= 5000


def test_acquire_on_an_empty_key(backend):
    lookup = backend.acquire(KEYS.product(1), "token", 5000)
    assert (lookup.raw, lookup.generation) == (NO_VALUE, 0)


def test_fill_needs_the_lease_token_and_releases_the_lease(backend, redis_db):
    key = KEYS.product(1)
    backend.acquire(key, "mine", 5000)
    assert backend.fill([Fill(key, b"theirs", 1000, "not-mine", 0)]) == [False]
    assert backend.fill([Fill(key, b"mine", 1000, "mine", 0)]) == [True]
    assert redis_db.get(key.entry) == b"mine" and not redis_db.exists(key.lease)
    assert 0 < redis_db.pttl(key.entry) <= 1000


def test_fill_needs_the_generation_read_before_computing(backend, redis_db):
    key = KEYS.reviews(1, {"page": 1})
    backend.acquire(key, "mine", 5000)
    redis_db.incr(key.generation)
    assert backend.fill([Fill(key, b"old", 1000, "mine", 0)]) == [False]
    assert not redis_db.exists(key.entry) and not redis_db.exists(key.lease)


def test_release_only_deletes_our_own_lease(backend, redis_db):
    key = KEYS.product(1)
    backend.acquire(key, "theirs", 5000)
    backend.release(key, "mine")
    assert redis_db.get(key.lease) == b"theirs"
    backend.release(key, "theirs")
    assert not redis_db.exists(key.lease)


def test_bump_is_an_incr_with_an_idle_expiry(backend, redis_db):
    generation = KEYS.reviews_generation(1)
    backend.invalidate([], [generation, generation], 60_000)
    assert redis_db.get(generation) == b"2"
    assert 0 < redis_db.pttl(generation) <= 60_000


def test_count_is_a_windowed_counter(backend, redis_db):
    assert [backend.count("shelf:test-counter", 1000) for _ in range(3)] == [1, 2, 3]
    assert 0 < redis_db.pttl("shelf:test-counter") <= 1000


@pytest.fixture
def null_region() -> Region:
    return Region(
        NullBackend(), CacheConfig(ttls=ttls()), keys=CatalogKeys()
    )  # metrics=None: the no-op metrics


def test_null_backend_always_computes_and_never_stores(null_region, redis_db):
    key, creator = null_region.keys.product(1), CountingCreator()
    states = [null_region.get_or_create(key, creator).state for _ in range(3)]
    assert (states, creator.calls) == ([State.MISS] * 3, 3)
    assert redis_db.dbsize() == 0


def test_null_backend_accepts_every_write_operation(null_region):
    key = null_region.keys.product(1)
    null_region.invalidate([key])
    null_region.invalidate((), [null_region.keys.reviews_generation(1)])
    assert null_region.purge() == 0
    assert null_region.fill_many([(key, payload(b"x"))], null_region.reserve([key])) == 1
    assert null_region.get_or_create(key, CountingCreator(status=404)).state == State.MISS
