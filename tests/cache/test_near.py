"""The near cache against real Redis: no round trip on a local hit, and never a stale one.

"Another process" is a second ``RedisBackend`` with its own connection pool, as a writer in
another gunicorn worker or on another machine would be.
"""

from __future__ import annotations

import os
import select
import time

import pytest
import redis

from cache.api import CacheUnavailable
from cache.backends.cluster import ClusterBackend
from cache.backends.near import PING_SECONDS, RECONNECT_SECONDS, NearCache
from cache.backends.redis import RedisBackend
from cache.entry import Entry, decode, encode
from catalog.resources import CatalogKeys

from .conftest import TEST_REDIS_TIMEOUT_MS
from .support import CountingCreator, FakeClock, closed_port, commands_sent


def entry(body: bytes, generation: int = 0) -> bytes:
    return encode(Entry(200, body, '"e"', 1.0, 2.0e9, 1.0, generation))


@pytest.fixture
def near_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def near(backend, near_clock):
    hits: list[str] = []
    cache = NearCache(backend, max_entries=100, max_age=10.0, on_local_hit=hits.append, clock=near_clock)
    cache.local_hits = hits
    yield cache
    cache.close()


@pytest.fixture
def other(cache_redis_url):
    """Another process's backend, to write with."""
    writer = RedisBackend.from_url(cache_redis_url, timeout_ms=TEST_REDIS_TIMEOUT_MS)
    yield writer
    writer.close()


@pytest.fixture
def keys(make_region):
    return make_region().keys


def tracking_client(near: NearCache) -> redis.Redis:
    """A client over the near cache's own pool, whose connections make its tracked reads."""
    return redis.Redis(connection_pool=near._tracking)


def test_a_local_hit_costs_no_redis_command(near, keys, redis_db, cache_redis_url):
    key = keys.product(1)
    redis_db.set(key.entry, entry(b"one"))
    first = near.get(key)
    sent = commands_sent(tracking_client(near), cache_redis_url, lambda: near.get(key))
    assert sent == []
    assert near.get(key).raw == first.raw == entry(b"one")
    assert near.local_hits == ["product", "product"]


def test_the_redis_read_asks_to_be_tracked_in_the_same_round_trip(near, keys, redis_db, cache_redis_url):
    key = keys.product(1)
    redis_db.set(key.entry, entry(b"one"))
    near.get(keys.product(99))  # registers the pooled connection's tracking first
    sent = commands_sent(tracking_client(near), cache_redis_url, lambda: near.get(key))
    assert sent == ["CLIENT CACHING YES", f"GET {key.entry}"]


def test_an_invalidation_by_another_process_is_seen_by_the_next_read(near, other, keys, redis_db):
    key = keys.product(2)
    redis_db.set(key.entry, entry(b"old"))
    assert near.get(key).raw == entry(b"old")
    other.invalidate([key])
    assert not near.get(key).raw
    redis_db.set(key.entry, entry(b"new"))
    assert near.get(key).raw == entry(b"new")


def test_a_fill_by_another_process_replaces_the_local_copy(near, other, keys, redis_db):
    key = keys.product(3)
    redis_db.set(key.entry, entry(b"old"))
    near.get(key)
    redis_db.set(key.entry, entry(b"refreshed"))
    redis_db.ping()
    assert near.get(key).raw == entry(b"refreshed")


def test_a_generation_bump_drops_every_page_of_the_scope(near, other, keys, redis_db):
    pages = [keys.reviews(1, {"page": page}) for page in (1, 2)]
    elsewhere = keys.reviews(2, {"page": 1})
    for key in [*pages, elsewhere]:
        redis_db.set(key.entry, entry(b"page"))
        assert near.get(key).generation == 0
    other.invalidate([], [pages[0].generation], 60_000)
    assert [near.get(key).generation for key in pages] == [1, 1]
    assert near.local_hits == []  # both pages were read from Redis again
    near.get(elsewhere)
    assert near.local_hits == ["reviews"]


def test_an_invalidation_during_the_read_keeps_the_value_out(near, other, keys, redis_db, monkeypatch):
    """The stale-set race, in-process: the read returns the old value after the write landed."""
    key = keys.product(4)
    redis_db.set(key.entry, entry(b"old"))
    real_read = near._read_tracked

    def slow_read(k, listener_id):
        lookup = real_read(k, listener_id)  # reads "old" and asks Redis to track the key
        other.invalidate([key])  # the write lands before our read comes back
        redis_db.set(key.entry, entry(b"new"))
        return lookup

    monkeypatch.setattr(near, "_read_tracked", slow_read)
    assert near.get(key).raw == entry(b"old")  # this request read before the write: fine
    monkeypatch.setattr(near, "_read_tracked", real_read)
    assert near.get(key).raw == entry(b"new")
    assert near.local_hits == []


def test_a_flush_empties_the_near_cache(near, keys, redis_db):
    key = keys.product(5)
    redis_db.set(key.entry, entry(b"x"))
    near.get(key)
    redis_db.flushdb()
    assert not near.get(key).raw
    assert near.size() == 0


def test_a_lost_listener_empties_the_cache_then_comes_back(near, keys, redis_db, near_clock):
    key = keys.product(6)
    redis_db.set(key.entry, entry(b"x"))
    near.get(key)
    redis_db.client_kill_filter(_id=near._listener_id)
    assert near.get(key).raw == entry(b"x")  # read through: nothing local can be trusted
    assert near._listener is None and near.size() == 0 and near.local_hits == []
    near.get(key)
    assert near.local_hits == []  # still off until the reconnect delay passed
    near_clock.advance(RECONNECT_SECONDS)
    near.get(key)
    near.get(key)
    assert near.local_hits == ["product"]
    redis_db.set(key.entry, entry(b"y"))
    redis_db.ping()
    assert near.get(key).raw == entry(b"y")  # the new listener receives invalidations


def test_a_silent_listener_is_treated_as_lost(near, keys, redis_db, near_clock, monkeypatch):
    """A half-open listener (no pong comes back) must not keep the near cache serving."""
    key = keys.product(12)
    redis_db.set(key.entry, entry(b"x"))
    near.get(key)
    near.get(key)
    assert near.local_hits == ["product"]
    listener = near._listener
    real_send = listener.send_command
    monkeypatch.setattr(
        listener, "send_command", lambda *args: None if args == ("PING",) else real_send(*args)
    )
    near_clock.advance(PING_SECONDS)
    near.get(key)  # sends the ping (swallowed: the network ate it)
    assert near.local_hits == ["product", "product"]
    near_clock.advance(PING_SECONDS + 0.1)
    near.get(key)
    assert near._listener is None and near.local_hits == ["product", "product"]


def test_a_live_listener_answers_its_pings(backend, keys, redis_db, near_clock):
    hits: list[str] = []
    near = NearCache(backend, max_entries=10, max_age=1000.0, on_local_hit=hits.append, clock=near_clock)
    key = keys.product(13)
    redis_db.set(key.entry, entry(b"x"))
    near.get(key)
    for _ in range(3):
        near_clock.advance(PING_SECONDS + 0.5)  # a ping unanswered this long would be fatal
        near.get(key)  # a ping goes out...
        redis_db.ping()  # ...and its pong is back by the next lookup
    assert near._listener is not None and hits == ["product"] * 3
    near.close()


def test_a_reconnected_data_connection_is_tracked_again(near, keys, redis_db):
    key = keys.product(7)
    redis_db.set(key.entry, entry(b"x"))
    near.get(keys.product(70))
    near._tracking.disconnect()  # every tracking connection reconnects, tracking lost
    near.get(key)
    redis_db.set(key.entry, entry(b"y"))
    redis_db.ping()
    assert near.get(key).raw == entry(b"y")


# Redis tracks a key for the connection that read it, and drops a closed connection's keys
# silently: the listener is never told about their changes.


def test_a_connection_another_command_dropped_loses_no_invalidation(near, other, keys, redis_db):
    """A timeout in a fill or an MGET closes the pooled connection it ran on: not a tracking one."""
    key = keys.product(17)
    redis_db.set(key.entry, entry(b"old"))
    near.get(key)
    near.client.connection_pool.disconnect()
    other.invalidate([key])
    redis_db.set(key.entry, entry(b"new"))
    redis_db.ping()
    assert near.get(key).raw == entry(b"new")


def test_a_failed_tracked_read_empties_the_table(near, other, keys, redis_db, monkeypatch):
    """The read that fails closes its connection, and with it the tracking of what it read before."""
    kept, failing = keys.product(18), keys.product(19)
    redis_db.set(kept.entry, entry(b"old"))
    near.get(kept)
    connection = near._tracking.get_connection()
    near._tracking.release(connection)  # the connection the next tracked read uses (the pool is LIFO)

    def timed_out(*args, **kwargs):
        connection.disconnect()  # what redis-py does on a socket timeout
        raise redis.TimeoutError("Timeout reading from socket")

    monkeypatch.setattr(connection, "read_response", timed_out)
    with pytest.raises(CacheUnavailable):
        near.get(failing)
    monkeypatch.undo()
    other.invalidate([kept])  # Redis no longer tracks ``kept`` for anyone
    redis_db.set(kept.entry, entry(b"new"))
    redis_db.ping()
    assert near.size() == 0
    assert near.get(kept).raw == entry(b"new")


def test_a_tracking_connection_the_server_closed_is_noticed_at_the_next_ping(
    near, other, keys, redis_db, near_clock
):
    key = keys.product(20)
    redis_db.set(key.entry, entry(b"old"))
    near.get(key)
    connection = near._tracking.get_connection()
    near._tracking.release(connection)
    redis_db.client_kill_filter(_id=tracking_client(near).client_id())  # same LIFO connection
    _wait_readable(connection)  # the server's FIN has arrived
    other.invalidate([key])
    redis_db.set(key.entry, entry(b"new"))
    redis_db.ping()
    near_clock.advance(PING_SECONDS)
    assert near.get(key).raw == entry(b"new")
    assert near.local_hits == []


def _wait_readable(connection, seconds: float = 2.0) -> None:
    poller = select.poll()
    poller.register(connection._sock.fileno(), select.POLLIN)
    deadline = time.monotonic() + seconds
    while not poller.poll(10):
        assert time.monotonic() < deadline, "the killed connection never became readable"


def test_slots_expire_after_max_age(near, keys, redis_db, near_clock):
    key = keys.product(8)
    redis_db.set(key.entry, entry(b"x"))
    near.get(key)
    near_clock.advance(10.0)
    near.get(key)
    assert near.local_hits == []


def test_the_table_is_bounded(backend, keys, redis_db):
    near = NearCache(backend, max_entries=3, max_age=10.0)
    for product_id in range(10):
        redis_db.set(keys.product(product_id).entry, entry(b"x"))
        near.get(keys.product(product_id))
    assert near.size() == 3
    near.close()


def test_misses_are_not_kept(near, keys):
    assert not near.get(keys.product(9)).raw
    assert near.size() == 0


def test_redis_down_is_cache_unavailable():
    dead = RedisBackend.from_url(f"redis://127.0.0.1:{closed_port()}/0", timeout_ms=100)
    near = NearCache(dead, max_entries=10, max_age=10.0)
    with pytest.raises(CacheUnavailable):
        near.get(CatalogKeys("t").product(1))
    near.close()


def test_a_forked_child_starts_empty(near, keys, redis_db):
    key = keys.product(10)
    redis_db.set(key.entry, entry(b"x"))
    near.get(key)
    pid = os.fork()
    if pid == 0:  # the child: the parent's listener and entries are not its own
        os._exit(0 if near._listener is None and near.size() == 0 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert near.size() == 1  # the parent's table is untouched


def test_region_over_a_near_cache_serves_hits_without_redis(make_region, backend, cache_redis_url):
    near = NearCache(backend, max_entries=100, max_age=10.0)
    region = make_region(region_backend=near)
    key = region.keys.product(11)
    creator = CountingCreator(b"body")
    region.get_or_create(key, creator)  # miss: fills Redis (whose tracking push for the key may trail)
    backend.client.ping()  # ... but not past this reply
    region.get_or_create(key, creator)  # hit from Redis, kept
    sent = commands_sent(backend.client, cache_redis_url, lambda: region.get_or_create(key, creator))
    assert sent == [] and creator.calls == 1
    region.invalidate([key])
    assert region.get_or_create(key, creator).state.value == "MISS" and creator.calls == 2


def test_kept_entries_are_decoded_once_and_corrupt_ones_not_kept(near, keys, redis_db):
    good, bad = keys.product(14), keys.product(15)
    redis_db.set(good.entry, entry(b"x"))
    redis_db.set(bad.entry, b"\x80garbage")
    read = near.get(good)
    assert read.entry == decode(entry(b"x"))  # decoded as it was read from Redis
    assert near.get(good) is read  # kept as it was: not read or decoded again
    near.get(bad)
    near.get(bad)
    assert near.local_hits == ["product"]


def test_peek_serves_fresh_hits_only_and_decides_nothing(make_region, backend, clock, cache_redis_url):
    near = NearCache(backend, max_entries=100, max_age=10_000.0)
    region = make_region(region_backend=near, xfetch_beta=1.0)
    key = region.keys.product(16)
    creator = CountingCreator(b"body", delay=0.05)  # XFetch's head start scales with compute time
    assert region.peek(key).hit is None  # a miss: computing is get_or_create's job
    region.get_or_create(key, creator)
    backend.client.ping()
    from_redis = region.peek(key).hit
    assert from_redis.state.value == "HIT" and creator.calls == 1
    sent = commands_sent(backend.client, cache_redis_url, lambda: region.peek(key))
    assert sent == []  # the near cache kept what it read
    held = region.peek(key).hit.entry
    assert held == from_redis.entry

    # 20x XFetch's mean head start before the soft expiry, it stands aside; get_or_create decides.
    margin = held.compute_ms / 1000 * 20
    clock.now = held.soft_expires_at - margin * 1.1
    assert region.peek(key).hit is not None
    clock.now = held.soft_expires_at - margin * 0.9
    assert region.peek(key).hit is None
    assert region.get_or_create(key, creator).state.value == "HIT"  # random 1.0: no early refresh
    clock.now = held.soft_expires_at + 1
    assert region.peek(key).hit is None  # stale: refreshing is get_or_create's job
    assert creator.calls == 1

    clock.now = held.created_at
    for _ in range(region.config.breaker_threshold):
        region.breaker.record_failure()
    assert region.peek(key).hit is None  # an open breaker: get_or_create bypasses the store


@pytest.mark.system
def test_a_near_cache_refuses_a_cluster(redis_cluster):
    """Tracking is per node: one listener on one node would miss the others' invalidations."""
    backend = ClusterBackend.from_url(redis_cluster.url, timeout_ms=TEST_REDIS_TIMEOUT_MS)
    try:
        with pytest.raises(ValueError, match="cannot front a Redis Cluster"):
            NearCache(backend, max_entries=10, max_age=10.0)
    finally:
        backend.close()
