"""A near cache: entries read from Redis kept in the process, dropped when Redis says they changed.

A hit in the process costs no round trip at all; a plain Redis GET costs one, and on
this stack that round trip (pool, socket, parser) is the largest cost of a cached read.
Staleness is prevented by Redis itself, not by a TTL: server-assisted client-side caching
(``CLIENT TRACKING``, Redis 6+). Reads that may be kept are sent as ``CLIENT
CACHING YES`` + ``GET``/``MGET`` on a connection tracking in OPTIN mode, so Redis
remembers exactly those keys; when one is written, deleted, expired or evicted, Redis
pushes its name to this process's listener connection (RESP2, subscribed to
``__redis__:invalidate``), and the slot is dropped. For a scoped key the MGET tracks the
scope's generation too, so a generation bump drops every list page kept under it.

The rules that keep the README's guarantee (a read after a 2xx write sees the write):

* Every lookup first checks the listener's socket (one ``poll``, under a microsecond) and,
  when anything arrived, drains it under the same lock as the lookup. Redis queues the
  pushes while executing the write, before the writer's reply, and the writer makes one
  more round trip after it (``RedisBackend.invalidate``), which Redis reads only after it
  has written out every reply and push of the previous loop. So when the writer answers
  2xx, the push is already in every listener's socket, and the next lookup anywhere
  applies it.
* A read in flight is a placeholder slot; the value is kept only if no invalidation (or
  flush) removed that placeholder meanwhile: the memcache paper's lease, in-process.
* Redis tracks a key for the connection that read it, and forgets a closed connection's keys
  without a word to the listener. So tracked reads have a connection pool of their own, which
  nothing else uses (a timeout in any other command closes the connection it ran on), and the
  whole table is dropped when one of its connections fails, comes back as a new socket, or is
  found closed by the server while idle (checked with every listener ping).
* Listener trouble (Redis restarted, connection killed, a protocol error) empties the
  near cache and turns it off until a new listener is up (retried at most once a
  second); data connections re-register with the new listener on their next tracked
  read, and a reconnected data connection is noticed by its new socket.
* A listener whose connection went silent without closing (a half-open TCP connection
  after a network fault) is caught by a PING every ``PING_SECONDS`` while the process is
  serving: no pong within as long, and it is treated as lost.
* Slots also expire after ``max_age`` seconds, a bound on any invalidation lost in a
  way we cannot see, and the table is an LRU of ``max_entries``.

Why by hand: redis-py 5+ has client-side caching built in, but it tracks on every
connection of the pool with pushes inline (RESP3), so a push for an idle pooled
connection waits unread until that connection is used again; it keeps raw replies
(a generation bump cannot drop the pages computed under it); and it knows nothing of
our placeholder rule. Flask-Caching has no near cache.

On Redis Cluster each shard needs its own listener (tracking is per node), re-established when
slots move; until that exists a near cache refuses to front a cluster rather than serve entries
no listener watches (Shelf: ``SHELF_CACHE_LOCAL_ENTRIES=0`` there).
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import redis

from ..api import NO_VALUE, CacheUnavailable, Fill, Lookup
from ..entry import decode
from ..keys import CacheKey
from .redis import RedisBackend, lookup_from

logger = logging.getLogger("shelf.cache.near")

CHANNEL = b"__redis__:invalidate"
RECONNECT_SECONDS = 1.0
"""Least time between attempts to bring a lost listener back."""

PING_SECONDS = 5.0
"""A busy process pings its listener this often; no pong within as long means the listener is dead."""


@dataclass
class _Slot:
    lookup: Lookup | None  # None while the read that will fill it is in flight
    generation_key: str | None
    expires_at: float


class NearCache:
    """A ``Backend`` wrapping a ``RedisBackend``: ``get`` goes through the process-local table,
    everything else straight to Redis."""

    def __init__(
        self,
        inner: RedisBackend,
        max_entries: int,
        max_age: float,
        on_local_hit: Callable[[str], None] = lambda resource: None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if max_entries < 1 or max_age <= 0:
            raise ValueError("a near cache needs max_entries >= 1 and max_age > 0")
        if inner.cluster:
            raise ValueError(
                "a near cache cannot front a Redis Cluster: its invalidations come from one node's "
                "key tracking, and a cluster spreads the keys over several; turn the near cache off"
            )
        self.inner, self.client = inner, inner.client
        self.max_entries, self.max_age = max_entries, max_age
        self._on_local_hit, self._clock = on_local_hit, clock
        self._lock = threading.Lock()
        self._tracking = _own_pool(inner.client.connection_pool)  # for the tracked reads only
        self._idle: set[redis.connection.AbstractConnection] = set()  # its connections not in use
        self._slots: OrderedDict[str, _Slot] = OrderedDict()
        self._dependents: dict[str, set[str]] = {}
        self._listener: redis.connection.AbstractConnection | None = None
        self._listener_id: int | None = None
        self._listener_fd: int | None = None
        self._next_attempt = 0.0
        self._ping_sent_at: float | None = None
        self._next_ping = 0.0
        _instances.add(self)  # so a forked child drops what it inherited (see _reset_all_after_fork)

    # --- reads ------------------------------------------------------------------------------

    def get(self, key: CacheKey) -> Lookup:
        behind = self._behind()
        with self._lock:
            if behind:
                self._sync()
            kept = self._kept(key)
            if kept is not None:
                return kept
            listener_id = self._listener_id
            placeholder = self._reserve(key) if listener_id is not None else None
        if placeholder is None:
            return self.inner.get(key)
        lookup = self._read_tracked(key, listener_id)
        decoded = None if lookup.raw is NO_VALUE else decode(lookup.raw)
        if decoded is None:  # a miss, or bytes the region will count as corrupt: nothing to keep
            with self._lock:
                self._drop_if(key.entry, placeholder)
            return lookup
        lookup = Lookup(lookup.raw, lookup.generation, decoded)  # so the region does not decode it again
        with self._lock:
            self._sync()
            if self._slots.get(key.entry) is placeholder:
                placeholder.lookup = lookup
        return lookup

    def size(self) -> int:
        """Entries held (reads in flight not counted)."""
        return sum(1 for slot in self._slots.values() if slot.lookup is not None)

    # --- everything else is Redis's ---------------------------------------------------------

    def get_many(self, keys: Sequence[CacheKey]) -> list[Lookup]:
        """What this process holds, and one MGET for the rest; those are not kept (untracked)."""
        behind = self._behind()
        with self._lock:
            if behind:
                self._sync()
            held = [self._held(key) for key in keys]
        fetched = iter(
            self.inner.get_many([key for key, lookup in zip(keys, held, strict=True) if not lookup])
        )
        return [lookup or next(fetched) for lookup in held]

    def acquire(self, key: CacheKey, token: str, ttl_ms: int) -> Lookup | None:
        return self.inner.acquire(key, token, ttl_ms)

    def acquire_many(self, keys: Sequence[CacheKey], token: str, ttl_ms: int) -> list[int | None]:
        return self.inner.acquire_many(keys, token, ttl_ms)

    def fill(self, fills: Sequence[Fill]) -> list[bool]:
        return self.inner.fill(fills)

    def release(self, key: CacheKey, token: str) -> None:
        self.inner.release(key, token)

    def invalidate(
        self,
        keys: Iterable[CacheKey],
        generation_keys: Iterable[str] = (),
        ttl_ms: int = 0,
        tags: Iterable[str] = (),
    ) -> None:
        self.inner.invalidate(keys, generation_keys, ttl_ms, tags)

    def count(self, counter_key: str, ttl_ms: int) -> int:
        return self.inner.count(counter_key, ttl_ms)

    def purge(self, match: str, select: Callable[[str], bool]) -> int:
        return self.inner.purge(match, select)

    def close(self) -> None:
        with self._lock:
            self._stop_listening()
            self._tracking.disconnect()
        self.inner.close()

    # --- the table --------------------------------------------------------------------------

    def _behind(self) -> bool:
        """Whether the listener has something to apply, or a ping or reconnect is due: then the lookup
        calls ``_sync`` under the lock. The poll runs outside the lock because it releases the GIL,
        and a thread that does so while holding the lock makes every other reader queue behind it.
        Nothing is lost by that: the socket is only read under the lock, and applied before the lock
        is released, so a push that was already read by another thread is applied by the time this
        thread holds the lock."""
        fd = self._listener_fd
        if fd is None:
            return True
        return readable(fd) or self._ping_sent_at is not None or self._clock() >= self._next_ping

    def _kept(self, key: CacheKey) -> Lookup | None:
        """The slot's lookup if it is held and young enough (call under the lock, after ``_sync``)."""
        lookup = self._held(key)
        if lookup is not None:
            self._on_local_hit(key.resource)
        return lookup

    def _held(self, key: CacheKey) -> Lookup | None:
        slot = self._slots.get(key.entry)
        if slot is None or slot.lookup is None or slot.expires_at <= self._clock():
            return None
        self._slots.move_to_end(key.entry)
        return slot.lookup

    def _reserve(self, key: CacheKey) -> _Slot:
        placeholder = _Slot(None, key.generation, self._clock() + self.max_age)
        self._forget(key.entry)
        self._slots[key.entry] = placeholder
        if key.generation is not None:
            self._dependents.setdefault(key.generation, set()).add(key.entry)
        while len(self._slots) > self.max_entries:
            self._forget(next(iter(self._slots)))
        return placeholder

    def _forget(self, entry_key: str) -> None:
        slot = self._slots.pop(entry_key, None)
        if slot is not None and slot.generation_key is not None:
            dependents = self._dependents.get(slot.generation_key)
            if dependents is not None:
                dependents.discard(entry_key)
                if not dependents:
                    del self._dependents[slot.generation_key]

    def _drop_if(self, entry_key: str, slot: _Slot) -> None:
        if self._slots.get(entry_key) is slot:
            self._forget(entry_key)

    def _invalidated(self, keys: list[bytes] | None) -> None:
        if keys is None:  # FLUSHDB / FLUSHALL, or Redis dropped its tracking table
            self._clear()
            return
        for raw in keys:
            name = raw.decode()
            self._forget(name)
            for entry_key in self._dependents.pop(name, ()):
                self._slots.pop(entry_key, None)

    def _clear(self) -> None:
        self._slots.clear()
        self._dependents.clear()

    # --- the listener -----------------------------------------------------------------------

    def _sync(self) -> None:
        """Apply every invalidation already received; (re)start the listener when it is due."""
        if self._listener is None:
            if self._clock() >= self._next_attempt:
                self._start_listening()
            return
        try:
            # One poll() of the socket tells whether anything arrived: the loop reads until the parser
            # holds nothing complete, and a partial reply's rest arrives on the socket too. can_read(0)
            # alone costs four times as much per call (timeouts set and reset, an exception when empty).
            if readable(self._listener_fd):
                while self._listener.can_read(timeout=0):
                    self._received(self._listener.read_response())
            self._keep_alive()
        except (redis.RedisError, OSError) as exc:
            logger.warning("near cache listener lost (%s); emptied until it is back", exc)
            self._stop_listening()

    def _received(self, message: object) -> None:
        if not isinstance(message, list) or not message:
            return
        if message[0] == b"message" and len(message) == 3:
            self._invalidated(message[2])
        elif message[0] == b"pong":
            self._ping_sent_at = None

    def _keep_alive(self) -> None:
        now = self._clock()
        if self._ping_sent_at is not None:
            if now - self._ping_sent_at > PING_SECONDS:
                raise redis.ConnectionError(f"no pong from the listener in {PING_SECONDS:.0f} s")
        elif now >= self._next_ping:
            self._listener.send_command("PING")
            self._ping_sent_at, self._next_ping = now, now + PING_SECONDS
            self._check_idle()

    def _check_idle(self) -> None:
        """An idle tracking connection has nothing to read (its invalidations go to the listener)
        unless the server closed it: then the keys it tracked are no longer watched."""
        closed = [connection for connection in self._idle if _closed(connection)]
        if closed:
            logger.warning("a near cache tracking connection was closed by Redis; emptied")
            self._clear()
            for connection in closed:
                connection.disconnect()

    def _start_listening(self) -> None:
        self._next_attempt = self._clock() + RECONNECT_SECONDS
        pool = self.client.connection_pool
        listener = pool.connection_class(**{**pool.connection_kwargs, "protocol": 2})
        try:
            listener.connect()
            listener.send_command("CLIENT", "ID")
            listener_id = int(listener.read_response())
            listener.send_command("SUBSCRIBE", CHANNEL)
            listener.read_response()
        except (redis.RedisError, OSError, ValueError) as exc:
            listener.disconnect()
            logger.warning("near cache listener could not start (%s); reading through to Redis", exc)
            return
        self._clear()
        self._listener, self._listener_id = listener, listener_id
        self._listener_fd = listener._sock.fileno()
        self._ping_sent_at, self._next_ping = None, self._clock() + PING_SECONDS

    def _stop_listening(self) -> None:
        self._clear()
        if self._listener is not None:
            self._listener.disconnect()
        self._listener = self._listener_id = self._listener_fd = None
        self._next_attempt = self._clock() + RECONNECT_SECONDS

    def _after_fork(self) -> None:
        # The parent's listener socket is not ours: drop it without closing it, and the table.
        self._lock = threading.Lock()
        self._clear()
        self._idle = set()  # the parent's; the pool replaces them in the child on first use
        self._listener = self._listener_id = self._listener_fd = None
        self._next_attempt = 0.0

    def _read_tracked(self, key: CacheKey, listener_id: int) -> Lookup:
        pool = self._tracking
        try:
            connection = pool.get_connection()
        except (redis.RedisError, OSError) as exc:
            self._tracking_lost()  # it may have dropped a connection that had tracked keys
            raise CacheUnavailable(f"{type(exc).__name__}: {exc}") from exc
        with self._lock:
            self._idle.discard(connection)
        try:
            if _track(connection, listener_id):
                self._tracking_lost()
            read = ("GET", key.entry) if key.generation is None else ("MGET", key.entry, key.generation)
            connection.send_packed_command(connection.pack_commands([("CLIENT", "CACHING", "YES"), read]))
            connection.read_response()
            return lookup_from(key, connection.read_response())
        except (redis.RedisError, OSError) as exc:
            connection.disconnect()
            self._tracking_lost()
            raise CacheUnavailable(f"{type(exc).__name__}: {exc}") from exc
        finally:
            with self._lock:
                self._idle.add(connection)
            pool.release(connection)

    def _tracking_lost(self) -> None:
        """A tracking connection closed: Redis will not report changes to the keys it read."""
        with self._lock:
            self._clear()


_pollers = threading.local()


def readable(fd: int) -> bool:
    """Whether ``fd`` has something to read, without blocking: one ``poll`` call. A poll object must
    not be used by two threads at once, so each thread keeps its own, registered on the last fd."""
    registered = getattr(_pollers, "registered", None)
    if registered is None or registered[0] != fd:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        registered = _pollers.registered = (fd, poller)
    return bool(registered[1].poll(0))


def _track(connection: redis.connection.AbstractConnection, listener_id: int) -> bool:
    """Point the connection's OPTIN tracking at our listener, once per socket and listener. True
    when the connection tracked keys on an earlier socket: those are no longer watched."""
    registered = getattr(connection, "_shelf_tracking", None)
    if registered == (connection._sock, listener_id):
        return False
    connection.send_command("CLIENT", "TRACKING", "ON", "REDIRECT", listener_id, "OPTIN")
    connection.read_response()
    connection._shelf_tracking = (connection._sock, listener_id)
    return registered is not None and registered[0] is not connection._sock


def _own_pool(pool: redis.ConnectionPool) -> redis.ConnectionPool:
    """A pool like ``pool`` for tracked reads only. It shares ``pool``'s connection kwargs (the same
    dict), so a connect hook installed later (the app's outbox replay) runs on its connections too."""
    own = redis.ConnectionPool(connection_class=pool.connection_class, max_connections=pool.max_connections)
    own.connection_kwargs = pool.connection_kwargs
    return own


def _closed(connection: redis.connection.AbstractConnection) -> bool:
    sock = connection._sock
    if sock is None:
        return False
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(0))


_instances: weakref.WeakSet[NearCache] = weakref.WeakSet()


def _reset_all_after_fork() -> None:
    for near in list(_instances):
        near._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_all_after_fork)
