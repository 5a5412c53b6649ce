"""``Region``: the cache-aside front end, with single flight, stale-while-revalidate and degradation.

Written by hand because Flask-Caching's backends (whose decorators the app runs over a Region,
through ``claim`` and ``complete``) have none of it: no stampede lock, no stale-while-revalidate,
no lease-checked writes, and they pickle values. The rules, in dogpile.cache's vocabulary:

* A fresh hit is one backend read (GET, or MGET of entry + generation for scoped keys).
* A miss takes the key's lease (SET NX PX) before computing; callers that lose wait for
  the winner's fill within ``wait_budget_ms``, then compute without storing.
* A fill is stored only if its lease token is still held and the scope generation (or the
  key's guard) is the one read before computing; ``invalidate`` deletes entry + lease and
  increments generations and guards, so a fill computed from pre-write data is always rejected.
* Dependency tags: a creator may name tags its entry depends on (``Payload.tags``); the fill
  registers the entry in each tag's set, and ``invalidate(tags=...)`` deletes every entry
  registered under a tag. With a guard instead of a generation, a key's entries survive every
  write but those that name one of their tags.
* Past its soft expiry an entry is stale: the lease winner recomputes, everyone else gets
  it at once as STALE. With a ``refresher`` (``refresh.BackgroundRefresher``) the winner is
  served the stale entry too and the recompute runs in the background under its lease.
  XFetch (Vattani et al., VLDB 2015) refreshes hot keys early, the same way.
* 404s are cached for ``negative_ttl``, at most ``negative_cap`` new ones per window.
* A store failure never reaches the caller of ``get_or_create`` (state BYPASS); a circuit
  breaker skips the store while it is down. ``invalidate`` raises ``CacheUnavailable``
  instead, so the app can keep the invalidation in its outbox and replay it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from .api import NO_VALUE, Backend, CacheUnavailable, CircuitOpen, Fill, Lookup
from .breaker import Breaker, BreakerState
from .config import CacheConfig, ResourceTTL
from .entry import Entry, Payload, decode, encode
from .keys import BODY, CacheKey, KeyBuilder, key_kind, tag_key
from .log import RateLimitedLog
from .metrics import Event, Metrics, NullMetrics
from .refresh import Refresher

logger = logging.getLogger("shelf.cache")

Creator = Callable[[], Payload]


class State(StrEnum):
    HIT = "HIT"
    MISS = "MISS"
    STALE = "STALE"
    BYPASS = "BYPASS"


STATE_EVENTS = {
    State.HIT: Event.HITS,
    State.MISS: Event.MISSES,
    State.STALE: Event.STALE,
    State.BYPASS: Event.BYPASS,
}


@dataclass(frozen=True)
class Result:
    """What ``get_or_create`` served; ``cache_ms`` is time spent in the cache layer, creator excluded."""

    entry: Entry
    state: State
    cache_ms: float
    compute_ms: float
    stale_if_error: bool = False


class Peek(NamedTuple):
    """What ``Region.peek`` found: a fresh HIT to serve, and the backend read it made (None when none
    was made: an open breaker or a store error), for ``get_or_create`` to go on from."""

    hit: Result | None
    lookup: Lookup | None


class Claim(NamedTuple):
    """What ``Region.claim`` found: an entry to serve, or the key's lease, for the caller to compute
    and then ``complete`` (or ``abandon``); neither when the caller should compute without storing
    (the store is down, or another caller's fill did not come within the wait budget)."""

    entry: Entry | None
    lease: _Lease | None


@dataclass(frozen=True)
class Reservation:
    """Leases taken by ``Region.reserve`` for warming: the keys won, with the generation read."""

    token: str
    generations: Mapping[CacheKey, int]

    @property
    def keys(self) -> list[CacheKey]:
        return list(self.generations)


XFETCH_TAIL = 20.0
"""XFetch's head start is ``compute time * beta * Exp(1)``; it exceeds 20 times its mean with
probability e**-20 (2e-9), so ``peek`` declines entries that close to their soft expiry."""


def unit_random() -> float:
    """Uniform in (0, 1]: XFetch takes its logarithm, so zero must be impossible."""
    return 1.0 - random.random()


class Region:
    def __init__(
        self,
        backend: Backend,
        config: CacheConfig | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        random: Callable[[], float] = unit_random,
        refresher: Refresher | None = None,
        keys: KeyBuilder | None = None,
    ):
        self.backend, self.config = backend, config or CacheConfig()
        self.refresher = refresher
        self._reads_suspended = threading.Event()
        self.keys = keys if keys is not None else KeyBuilder(self.config.key_prefix)  # the app's resources
        self.metrics = metrics or NullMetrics()
        self._clock, self._random = clock, random
        self._log = RateLimitedLog(logger)
        config = self.config
        self.breaker = Breaker(config.breaker_threshold, config.breaker_cooldown, clock, self._changed)

    def get_or_create(
        self,
        key: CacheKey,
        creator: Creator,
        *,
        allow_stale_on_error: tuple[type[Exception], ...] = (),
        lookup: Lookup | None = None,
    ) -> Result:
        """The entry for ``key``, computing it with ``creator`` on a miss (see the module docstring).
        ``lookup`` is the key's backend read when ``peek`` made it already: it is not read again."""
        watch = _Stopwatch()
        if self._reads_suspended.is_set():
            return self._uncached(key, creator, State.BYPASS, watch)
        try:
            if lookup is None:
                lookup = self._call(key.resource, self.backend.get, key)
        except CacheUnavailable:
            return self._uncached(key, creator, State.BYPASS, watch)
        entry = self._usable(key, lookup)
        if entry is None:
            return self._miss(key, creator, watch)
        if not self._should_refresh(entry):
            return self._finish(key, entry, State.HIT, watch)
        return self._refresh(key, creator, entry, allow_stale_on_error, watch)

    def peek(self, key: CacheKey) -> Peek:
        """A fresh HIT (one backend read, none when a near cache holds it), counted as one. Otherwise
        no hit, and the caller hands the read to ``get_or_create``, which decides: a miss, a stale or
        corrupt entry; or, with no read made, a store error (counted there, once) or an open breaker.
        A cached 404 is a HIT like any other entry.

        It never computes, refreshes or rolls XFetch's dice: an entry close enough to its soft
        expiry that XFetch could refresh it is declined (see ``XFETCH_TAIL``), so early refresh
        happens exactly as often as without it."""
        watch = _Stopwatch()
        if self.breaker.state is not BreakerState.CLOSED or self._reads_suspended.is_set():
            return Peek(None, None)
        try:
            lookup = self.backend.get(key)
        except CacheUnavailable:
            return Peek(None, None)
        entry = self._usable(key, lookup, count_corrupt=False)
        if entry is None or not self._clearly_fresh(entry):
            return Peek(None, lookup)
        return Peek(self._finish(key, entry, State.HIT, watch), lookup)

    def claim(self, key: CacheKey) -> Claim:
        """``get_or_create`` split in two, for callers that compute between two calls of a get/set
        API (Flask-Caching's decorators): the same reads, lease, wait for another caller's fill and
        stale-while-revalidate (a stale entry is served while the lease holder refreshes it), but
        the lease winner gets the lease back instead of calling a creator. Counted as a hit, stale,
        miss or bypass; never raises."""
        if self._reads_suspended.is_set():
            return self._claimed(key, State.BYPASS)
        try:
            entry = self._usable(key, self._call(key.resource, self.backend.get, key))
        except CacheUnavailable:
            return self._claimed(key, State.BYPASS)
        if entry is not None and not self._should_refresh(entry):
            return self._claimed(key, State.HIT, entry)
        lease = self._lease_or_none(key)
        if lease is None and entry is not None:
            return self._claimed(key, State.HIT if entry.is_fresh(self._clock()) else State.STALE, entry)
        if lease is None:
            return self._claim_after_wait(key)
        filled = self._filled_meanwhile(key, lease, seen=entry)
        if filled is not None:
            return self._claimed(key, State.HIT, filled)
        return self._claimed(key, State.MISS, lease=lease)

    def complete(
        self, key: CacheKey, lease: _Lease, payload: Payload, ttl: ResourceTTL | None = None, compute_ms=0.0
    ) -> bool:
        """Store what the caller of ``claim`` computed under its lease, checked as every fill is
        (lease still held, generation or guard unchanged); ``ttl`` overrides the resource's. True
        when stored. Never raises."""
        generation = lease.lookup.generation
        entry, ttl_ms = self._new_entry(key, payload, generation, compute_ms, ttl)
        expected = lease.lookup.guard if key.guard else generation
        fill = self._fill(key, entry, ttl_ms, lease.token, expected, payload.tags)
        try:
            [stored] = self._call(key.resource, self.backend.fill, [fill])
        except CacheUnavailable:
            return False
        self.metrics.count(Event.FILLS if stored else Event.FILL_REJECTED, key.resource)
        return stored

    def lease(self, key: CacheKey) -> _Lease | None:
        """The key's lease whatever is stored, to ``complete`` an overwrite; None when another caller
        holds it or the store is down. Never raises."""
        return self._lease_or_none(key)

    def abandon(self, key: CacheKey, lease: _Lease) -> None:
        """Give up a lease ``claim`` handed out without filling, so waiters need not outwait it."""
        self._release(key, lease.token)

    def _claimed(
        self, key: CacheKey, state: State, entry: Entry | None = None, lease: _Lease | None = None
    ) -> Claim:
        self.metrics.count(STATE_EVENTS[state], key.resource)
        return Claim(entry, lease)

    def _claim_after_wait(self, key: CacheKey) -> Claim:
        self.metrics.count(Event.LOCK_WAITS, key.resource)
        try:
            entry = self._poll_for_fill(key)
        except CacheUnavailable:
            return self._claimed(key, State.BYPASS)
        if entry is None:
            self.metrics.count(Event.LOCK_WAIT_TIMEOUTS, key.resource)
            return self._claimed(key, State.MISS)
        return self._claimed(key, State.HIT, entry)

    def invalidate(
        self, keys: Iterable[CacheKey], generation_keys: Sequence[str] = (), tags: Sequence[str] = ()
    ) -> None:
        """Delete entries (negative ones too) and void in-flight fills; make every entry of the
        ``generation_keys`` scopes a miss (O(1) per scope) and void the fills of the guards among
        them; delete the entries registered under the dependency-tag sets ``tags``. All in one
        round trip. Raises ``CacheUnavailable``."""
        keys = list(keys)
        if keys or generation_keys or tags:
            ttl_ms = int(self.config.generation_ttl * 1000)
            resource = keys[0].resource if keys else "generation"
            self._call(resource, self.backend.invalidate, keys, generation_keys, ttl_ms, tags)

    def invalidate_past_breaker(
        self, keys: Iterable[CacheKey], generation_keys: Sequence[str] = (), tags: Sequence[str] = ()
    ) -> None:
        """``invalidate`` sent even while the breaker is open, and not counted by it: for a connection
        hook that replays owed invalidations before the new connection serves anything, while the
        breaker still holds the outage being recovered from. Raises ``CacheUnavailable``."""
        keys = list(keys)
        if keys or generation_keys or tags:
            ttl_ms = int(self.config.generation_ttl * 1000)
            self.backend.invalidate(keys, generation_keys, ttl_ms, tags)

    def get_many(self, keys: Sequence[CacheKey]) -> list[Entry | None]:
        """Entries of unscoped keys, to assemble a response from (one round trip at most, none
        for what a near cache holds): each usable 200 entry, fresh or stale (a write deletes an
        entry it makes wrong), else None. Not counted as hits or misses: the caller's own read is.
        Raises ``CacheUnavailable``, also while reads are suspended."""
        if self._reads_suspended.is_set():
            raise CacheUnavailable("reads suspended: this process owes the store invalidations")
        lookups = self._call(keys[0].resource, self.backend.get_many, keys) if keys else []
        entries = [self._usable(key, lookup) for key, lookup in zip(keys, lookups, strict=True)]
        return [entry if entry is not None and entry.status == 200 else None for entry in entries]

    def suspend_reads(self) -> None:
        """Serve every read from its creator, as in an outage (BYPASS), until ``resume_reads``.

        For a process that could not deliver a write's invalidation (a timeout on one connection,
        say): its other connections and its near cache would go on serving what that write made
        wrong, to the very client the write answered. Writes (``invalidate``) still go through."""
        self._reads_suspended.set()

    def resume_reads(self) -> None:
        self._reads_suspended.clear()

    @property
    def reads_suspended(self) -> bool:
        return self._reads_suspended.is_set()

    def purge(self, resource: str | None = None) -> int:
        """Admin: delete every entry (of one resource, or of all versions); returns how many."""
        return self._call(resource or "all", self.backend.purge, self.keys.pattern(resource), _is_entry)

    def reserve(self, keys: Sequence[CacheKey], lease_ttl_ms: int | None = None) -> Reservation:
        """Warming, step 1: take the leases of ``keys`` (one round trip) BEFORE reading the data.

        Fills arriving after ``lease_ttl_ms`` (default: the config's) are rejected, so size
        batches to compute within it."""
        token, ttl_ms = secrets.token_hex(16), lease_ttl_ms or self.config.lease_ttl_ms
        generations = self._call("warm", self.backend.acquire_many, keys, token, ttl_ms)
        return Reservation(token, {k: g for k, g in zip(keys, generations, strict=True) if g is not None})

    def fill_many(self, items: Sequence[tuple[CacheKey, Payload]], reservation: Reservation) -> int:
        """Warming, step 2: store payloads for reserved keys in one round trip; returns how many stored."""
        fills = [self._warm_fill(key, payload, reservation) for key, payload in items]
        fills = [fill for fill in fills if fill is not None]
        stored = self._call("warm", self.backend.fill, fills) if fills else []
        for fill, ok in zip(fills, stored, strict=True):
            self.metrics.count(Event.FILLS if ok else Event.FILL_REJECTED, fill.key.resource)
        return sum(stored)

    def _miss(self, key: CacheKey, creator: Creator, watch: _Stopwatch) -> Result:
        try:
            lease = self._lease(key)
        except CacheUnavailable:
            return self._uncached(key, creator, State.BYPASS, watch)
        if lease is None:
            return self._wait(key, creator, watch)
        filled = self._filled_meanwhile(key, lease, seen=None)
        if filled is not None:
            return self._finish(key, filled, State.HIT, watch)
        payload = self._compute_leased(key, lease.token, creator, watch)
        return self._store(key, lease, payload, watch)

    def _refresh(
        self, key: CacheKey, creator: Creator, entry: Entry, allowed: tuple, watch: _Stopwatch
    ) -> Result:
        early = entry.is_fresh(self._clock())
        lease = self._lease_or_none(key)
        if lease is None:
            return self._finish(key, entry, State.HIT if early else State.STALE, watch)
        filled = self._filled_meanwhile(key, lease, seen=entry)
        if filled is not None:
            return self._finish(key, filled, State.HIT, watch)
        if self._deferred(lambda: self._refresh_behind(key, lease, creator)):
            return self._finish(key, entry, State.HIT if early else State.STALE, watch)
        try:
            payload = self._compute_leased(key, lease.token, creator, watch)
        except Exception as exc:
            if not early and not isinstance(exc, allowed):
                raise
            return self._refresh_failed(key, entry, exc, early, watch)
        return self._store(key, lease, payload, watch)

    def _deferred(self, task: Callable[[], None]) -> bool:
        return self.refresher is not None and self.refresher.submit(task)

    def _refresh_behind(self, key: CacheKey, lease: _Lease, creator: Creator) -> None:
        """The refresher's task: recompute under the lease the serving caller took, store if still valid."""
        watch = _Stopwatch()
        try:
            payload = self._compute_leased(key, lease.token, creator, watch)
        except Exception as exc:
            self._log.warning("background refresh of %s failed, the entry stays stale: %r", key.entry, exc)
            return
        self.metrics.count(Event.REFRESHES, key.resource)
        self._store(key, lease, payload, watch, served=False)

    def _refresh_failed(
        self, key: CacheKey, entry: Entry, exc: Exception, early: bool, watch: _Stopwatch
    ) -> Result:
        # An early refresh is optional: its failure must not cost the caller a fresh entry.
        self._log.warning("refresh of %s failed, serving the cached entry: %r", key.entry, exc)
        if early:
            return self._finish(key, entry, State.HIT, watch)
        return self._finish(key, entry, State.STALE, watch, stale_if_error=True)

    def _filled_meanwhile(self, key: CacheKey, lease: _Lease, seen: Entry | None) -> Entry | None:
        """A fresh entry another caller stored between our read and our lease: serve it, drop the lease."""
        entry = self._usable(key, lease.lookup, count_corrupt=False)
        if entry is None or entry == seen or not entry.is_fresh(self._clock()):
            return None
        self._release(key, lease.token)
        return entry

    def _wait(self, key: CacheKey, creator: Creator, watch: _Stopwatch) -> Result:
        self.metrics.count(Event.LOCK_WAITS, key.resource)
        try:
            entry = self._poll_for_fill(key)
        except CacheUnavailable:
            return self._uncached(key, creator, State.BYPASS, watch)
        if entry is not None:
            return self._finish(key, entry, State.HIT, watch)
        self.metrics.count(Event.LOCK_WAIT_TIMEOUTS, key.resource)
        return self._uncached(key, creator, State.MISS, watch)

    def _poll_for_fill(self, key: CacheKey) -> Entry | None:
        # Polling, not pub/sub: a subscription would pin a connection per waiting thread.
        deadline = time.monotonic() + self.config.wait_budget_ms / 1000
        while time.monotonic() < deadline:
            time.sleep(self.config.wait_poll_ms / 1000)
            entry = self._usable(key, self._call(key.resource, self.backend.get, key))
            if entry is not None:
                return entry
        return None

    def _store(
        self, key: CacheKey, lease: _Lease, payload: Payload, watch: _Stopwatch, served: bool = True
    ) -> Result | None:
        """Fill ``key`` under ``lease``; the Result of serving the payload when ``served``, else None
        (a background refresh serves nobody, so it counts no hit, miss or bypass)."""
        generation = lease.lookup.generation
        entry, ttl_ms = self._new_entry(key, payload, generation, watch.compute_ms)
        state = State.MISS
        if payload.status == 404 and not self._negative_allowed(key):
            self._release(key, lease.token)
        else:
            try:
                expected = lease.lookup.guard if key.guard else generation
                fill = self._fill(key, entry, ttl_ms, lease.token, expected, payload.tags)
                [stored] = self._call(key.resource, self.backend.fill, [fill])
                self.metrics.count(Event.FILLS if stored else Event.FILL_REJECTED, key.resource)
            except CacheUnavailable:
                state = State.BYPASS
        return self._finish(key, entry, state, watch) if served else None

    def _negative_allowed(self, key: CacheKey) -> bool:
        window = self.config.negative_window
        counter = self.keys.negative_budget(int(self._clock() // window))
        try:
            created = self._call(key.resource, self.backend.count, counter, int(window * 2000))
        except CacheUnavailable:
            return False
        if created > self.config.negative_cap:
            self.metrics.count(Event.NEGATIVE_CAPPED, key.resource)
        return created <= self.config.negative_cap

    def _warm_fill(self, key: CacheKey, payload: Payload, reservation: Reservation) -> Fill | None:
        checked = reservation.generations.get(key)
        if checked is None:
            return None  # someone else holds the lease: their fill is at least as new as ours
        generation = 0 if key.guard else checked
        entry, ttl_ms = self._new_entry(key, payload, generation, compute_ms=0.0)
        return self._fill(key, entry, ttl_ms, reservation.token, checked, payload.tags)

    def _fill(
        self, key: CacheKey, entry: Entry, ttl_ms: int, token: str, expected: int, tags: Sequence[str]
    ) -> Fill:
        tag_keys = tuple(tag_key(key.entry, name) for name in tags)
        tag_ttl_ms = int(self.config.generation_ttl * 1000)
        return Fill(key, encode(entry), ttl_ms, token, expected, tag_keys, tag_ttl_ms)

    def _new_entry(
        self,
        key: CacheKey,
        payload: Payload,
        generation: int,
        compute_ms: float,
        ttl: ResourceTTL | None = None,
    ) -> tuple[Entry, int]:
        ttl = ttl or self.config.ttl_for(key.resource, payload.status)
        scale = 1 - self.config.jitter * self._random()
        now = self._clock()
        soft_expires_at = now + ttl.soft * scale
        entry = Entry(
            payload.status, payload.body, payload.etag, now, soft_expires_at, compute_ms, generation
        )
        return entry, max(1, int(ttl.hard * scale * 1000))

    def _clearly_fresh(self, entry: Entry) -> bool:
        head_start = (entry.compute_ms / 1000) * max(self.config.xfetch_beta, 0) * XFETCH_TAIL
        return self._clock() + head_start < entry.soft_expires_at

    def _should_refresh(self, entry: Entry) -> bool:
        """Stale, or XFetch says refresh early: ``now - delta * beta * ln(rand) >= soft expiry``."""
        now = self._clock()
        if not entry.is_fresh(now):
            return True
        if self.config.xfetch_beta <= 0:
            return False
        head_start = -(entry.compute_ms / 1000) * self.config.xfetch_beta * math.log(self._random())
        return now + head_start >= entry.soft_expires_at

    def _usable(self, key: CacheKey, lookup: Lookup, count_corrupt: bool = True) -> Entry | None:
        if lookup.raw is NO_VALUE:
            return None
        entry = lookup.entry or decode(lookup.raw)
        if entry is None:
            if count_corrupt:
                self.metrics.count(Event.CORRUPT_ENTRIES, key.resource)
            return None
        return entry if entry.generation == lookup.generation else None

    def _uncached(self, key: CacheKey, creator: Creator, state: State, watch: _Stopwatch) -> Result:
        payload = watch.compute(creator)
        entry, _ = self._new_entry(key, payload, 0, watch.compute_ms)
        return self._finish(key, entry, state, watch)

    def _finish(self, key: CacheKey, entry: Entry, state: State, watch: _Stopwatch, **flags: bool) -> Result:
        self.metrics.count(STATE_EVENTS[state], key.resource)
        return Result(entry, state, watch.cache_ms(), watch.compute_ms, **flags)

    def _compute_leased(self, key: CacheKey, token: str, creator: Creator, watch: _Stopwatch) -> Payload:
        try:
            return watch.compute(creator)
        except BaseException:
            self._release(key, token)  # let the next caller fill instead of waiting out the lease
            raise

    def _lease(self, key: CacheKey) -> _Lease | None:
        token = secrets.token_hex(16)
        lookup = self._call(key.resource, self.backend.acquire, key, token, self.config.lease_ttl_ms)
        return None if lookup is None else _Lease(token, lookup)

    def _lease_or_none(self, key: CacheKey) -> _Lease | None:
        try:
            return self._lease(key)
        except CacheUnavailable:
            return None

    def _release(self, key: CacheKey, token: str) -> None:
        with contextlib.suppress(CacheUnavailable):  # the lease expires on its own anyway
            self._call(key.resource, self.backend.release, key, token)

    def _call(self, resource: str, operation: Callable, *args: object):
        if not self.breaker.allow():
            raise CircuitOpen("cache circuit breaker is open")
        try:
            result = operation(*args)
        except CacheUnavailable as exc:
            self.breaker.record_failure()
            self.metrics.count(Event.REDIS_ERRORS, resource)
            self._log.warning("cache unavailable, degrading to the database: %s", exc)
            raise
        self.breaker.record_success()
        return result

    def _changed(self, old: BreakerState, new: BreakerState) -> None:
        self.metrics.breaker_state(int(new))
        if new is BreakerState.CLOSED:
            logger.warning("cache store reachable again; circuit breaker closed")


@dataclass(frozen=True)
class _Lease:
    """A lease we hold, with the entry and generation read atomically when it was taken."""

    token: str
    lookup: Lookup


class _Stopwatch:
    """Splits a call's wall time into time in the creator and time in the cache layer."""

    def __init__(self) -> None:
        self.started, self.compute_ms = time.perf_counter(), 0.0

    def compute(self, creator: Creator) -> Payload:
        started = time.perf_counter()
        try:
            return creator()
        finally:
            self.compute_ms += (time.perf_counter() - started) * 1000

    def cache_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000 - self.compute_ms


def _is_entry(key: str) -> bool:
    return key_kind(key) == BODY
