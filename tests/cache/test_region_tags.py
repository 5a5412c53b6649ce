"""Dependency tags and fill guards: entries dropped by tag, fills in flight refused by their guard."""

from __future__ import annotations

import threading

from cache.entry import Payload
from cache.keys import tag_key
from cache.region import State

from .support import CountingCreator, sample

STORES = ("redis", "cluster")
"""Each test runs on the single Redis and on a Redis Cluster (``tests/cache/conftest.py``)."""


def tagged(body: bytes, *tags: str):
    def creator() -> Payload:
        return Payload(200, body, '"e"', tags)

    return creator


def page(region, number: int, guard: str = "price"):
    return region.keys.product_list({"page": number}, "all", guard)


def test_a_tagged_fill_registers_the_entry_in_each_tag_set_of_its_slot(region, redis_db):
    key = page(region, 1)
    region.get_or_create(key, tagged(b"one", "low", "scope"))
    for name in ("low", "scope"):
        assert redis_db.smembers(tag_key(key.entry, name)) == {key.entry.encode()}
        assert 0 < redis_db.pttl(tag_key(key.entry, name)) <= region.config.generation_ttl * 1000


def test_invalidating_a_tag_drops_its_entries_and_keeps_the_others(region, redis_db):
    low, high = page(region, 1), page(region, 2)
    region.get_or_create(low, tagged(b"low", "low"))
    region.get_or_create(high, tagged(b"high", "high"))
    region.invalidate((), (), [region.keys.list_tag("all", "low")])
    assert not redis_db.exists(low.entry) and redis_db.exists(high.entry)
    assert not redis_db.exists(region.keys.list_tag("all", "low"))
    assert region.get_or_create(high, tagged(b"new", "high")).state == State.HIT


def test_a_guarded_key_is_not_dropped_by_bumping_its_guard(region):
    key = page(region, 3)
    region.get_or_create(key, tagged(b"kept", "t"))
    region.invalidate((), [key.guard])
    assert region.get_or_create(key, tagged(b"other", "t")).entry.body == b"kept"


def fill_while(region, key, write) -> None:
    """Fill ``key`` with a creator that waits, while ``write()`` runs, before it returns."""
    started, written = threading.Event(), threading.Event()

    def slow():
        started.set()
        assert written.wait(5)
        return Payload(200, b"slow", '"s"', ("t",))

    reader = threading.Thread(target=region.get_or_create, args=(key, slow))
    reader.start()
    assert started.wait(5)
    write()
    written.set()
    reader.join(5)


def test_a_fill_in_flight_is_refused_once_its_guard_moved(region, registry):
    key = page(region, 4)
    fill_while(region, key, lambda: region.invalidate((), [key.guard], [region.keys.list_tag("all", "t")]))
    assert sample(registry, "fill_rejected", "product_list") == 1
    assert region.get_or_create(key, tagged(b"fresh", "t")).entry.body == b"fresh"


def test_a_guard_of_another_column_does_not_refuse_the_fill(region, registry):
    key = page(region, 5, guard="name")
    fill_while(region, key, lambda: region.invalidate((), [region.keys.list_guard("all", "price")]))
    assert sample(registry, "fills", "product_list") == 1


def test_a_fill_sweeps_expired_entries_out_of_its_tag_sets(region, redis_db):
    gone, live = page(region, 9), page(region, 10)
    region.get_or_create(gone, tagged(b"old", "scope"))
    redis_db.delete(gone.entry)  # expired
    region.get_or_create(live, tagged(b"new", "scope"))
    assert redis_db.smembers(tag_key(live.entry, "scope")) == {live.entry.encode()}


def test_tags_are_dropped_after_redis_forgot_the_script(region, redis_db):
    key = page(region, 6)
    region.get_or_create(key, tagged(b"x", "t"))
    redis_db.script_flush()
    region.invalidate((), [], [region.keys.list_tag("all", "t")])
    assert not redis_db.exists(key.entry)


def test_warming_a_guarded_key_registers_its_tags_and_checks_its_guard(region, redis_db):
    first, second = page(region, 7, guard="name"), page(region, 8, guard="price")
    reservation = region.reserve([first, second])
    region.invalidate((), [second.guard])  # a write lands between the reservation and the fill
    stored = region.fill_many(
        [(first, Payload(200, b"a", '"a"', ("t",))), (second, Payload(200, b"b", '"b"', ("t",)))], reservation
    )
    assert stored == 1
    assert redis_db.exists(first.entry) and not redis_db.exists(second.entry)
    assert redis_db.smembers(tag_key(first.entry, "t")) == {first.entry.encode()}


def test_get_many_reads_entries_in_one_round_trip_without_counting_them(region, registry):
    keys = [region.keys.product(n) for n in (1, 2, 3)]
    for key in keys[:2]:
        region.get_or_create(key, CountingCreator(key.entry.encode()))
    entries = region.get_many(keys)
    assert [entry and entry.body for entry in entries] == [
        keys[0].entry.encode(),
        keys[1].entry.encode(),
        None,
    ]
    assert sample(registry, "hits", "product") == 0
