"""Admin and warming operations: purge, and reserve + fill_many with lease-checked writes."""

from __future__ import annotations

import pytest

from cache.region import State

from .support import CountingCreator, payload, sample

STORES = ("redis", "cluster")
"""Each test runs on the single Redis and on a Redis Cluster (``tests/cache/conftest.py``)."""


@pytest.fixture
def filled(region):
    keys = {
        "product": region.keys.product(1),
        "reviews": region.keys.reviews(1, {"page": 1}),
        "category": region.keys.category("shoes"),
        "category_tree": region.keys.category_tree(),
    }
    for key in keys.values():
        region.get_or_create(key, CountingCreator())
    region.invalidate((), [region.keys.reviews_generation(1)])
    region.get_or_create(keys["reviews"], CountingCreator())
    return keys


def test_purge_one_resource(region, filled, redis_db):
    assert region.purge("category") == 1
    assert not redis_db.exists(filled["category"].entry)
    assert redis_db.exists(filled["category_tree"].entry)
    assert redis_db.exists(filled["product"].entry)


def test_purge_everything_keeps_generation_counters(region, filled, redis_db):
    redis_db.set("not-ours", 1)
    assert region.purge() == 4
    assert redis_db.keys("shelf:*:body*") == []
    assert redis_db.get(region.keys.reviews_generation(1)) == b"1"
    assert redis_db.exists("not-ours")


def test_purge_includes_older_schema_versions(region, redis_db):
    redis_db.set("shelf:v0:{p:1}:body", b"old format")
    assert region.purge() == 1


def test_fill_many_stores_reserved_keys(region, redis_db, registry):
    keys = [region.keys.product(n) for n in range(3)]
    reservation = region.reserve(keys)
    assert reservation.keys == keys
    stored = region.fill_many([(k, payload(f"p{n}".encode())) for n, k in enumerate(keys)], reservation)
    assert stored == 3
    assert [region.get_or_create(k, CountingCreator()).entry.body for k in keys] == [b"p0", b"p1", b"p2"]
    assert not any(redis_db.exists(k.lease) for k in keys)
    assert sample(registry, "fills", "product") == 3


def test_fill_many_never_overwrites_after_an_invalidation_of_its_key_or_scope(region):
    product, page = region.keys.product(1), region.keys.reviews(1, {"page": 1})
    untouched = region.keys.product(2)
    reservation = region.reserve([product, page, untouched])
    region.invalidate([product])  # a write committed after the warmer read its data
    region.invalidate((), [region.keys.reviews_generation(1)])
    items = [(product, payload(b"old")), (page, payload(b"old")), (untouched, payload(b"ok"))]
    assert region.fill_many(items, reservation) == 1
    assert region.get_or_create(product, CountingCreator(b"new")).entry.body == b"new"
    assert region.get_or_create(page, CountingCreator(b"new")).entry.body == b"new"


def test_reserve_skips_keys_being_filled_by_someone_else(region, redis_db):
    busy, free = region.keys.product(1), region.keys.product(2)
    redis_db.set(busy.lease, "request-in-flight", px=5000)
    reservation = region.reserve([busy, free])
    assert reservation.keys == [free]
    assert region.fill_many([(busy, payload(b"warm")), (free, payload(b"warm"))], reservation) == 1
    assert not redis_db.exists(busy.entry)


def test_fill_many_overwrites_an_older_entry_it_holds_the_lease_for(region, clock):
    key = region.keys.product(3)
    region.get_or_create(key, CountingCreator(b"v1"))
    clock.advance(1)
    assert region.fill_many([(key, payload(b"v2"))], region.reserve([key])) == 1
    result = region.get_or_create(key, CountingCreator())
    assert (result.state, result.entry.body, result.entry.created_at) == (State.HIT, b"v2", clock.now)


def test_fill_many_survives_a_script_flush(region, redis_db):
    keys = [region.keys.product(n) for n in range(2)]
    redis_db.script_flush()
    assert region.fill_many([(k, payload(b"x")) for k in keys], region.reserve(keys)) == 2


def test_fills_after_the_reservation_lapses_are_rejected(region, redis_db):
    key = region.keys.product(1)
    reservation = region.reserve([key], lease_ttl_ms=1)
    redis_db.delete(key.lease)  # what expiry does after 1 ms, without sleeping
    assert region.fill_many([(key, payload(b"late"))], reservation) == 0
