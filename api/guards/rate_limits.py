"""Per-client rate limits: a read budget per client IP, a write budget per token name.

Counters live in Redis, so every worker process and API instance shares one
budget per client. ``reads`` (GET, HEAD, OPTIONS) are keyed by the client IP
(see ``api.guards.proxies`` for how it is found behind proxies), ``writes`` by the
token's name, or by the IP when the request carries no valid token (so
guessing tokens is limited too). Budgets are fixed windows; one budget may
have several (``"20/second;1200/minute"``). Over budget is a 429 problem with
``Retry-After``; every limited response carries the ``RateLimit-Policy`` and
``RateLimit`` fields of draft-ietf-httpapi-ratelimit-headers-10.

Written by hand rather than with Flask-Limiter, which sends four Redis commands
per request (its counter script, then a TTL and a GET for the headers): more
than the cached read it guards. Counting every request in Redis, even in one
script call, would still be the biggest single cost of a cached read, so each
process *leases* tokens: one script call takes a chunk of a client's budget (``INCRBY``
on every window's counter, ``EXPIRE`` on a new window) and the next requests
spend it from memory, with no Redis round trip. A window's reset follows from
its index, so the headers need nothing more. The ``limits`` package still
parses the budgets.

A lease is ``lease_size``: a hundredth of the smallest window's budget, at most
100. Budgets under 200 a window (the 120/minute write default, ``20/second``)
lease 1 token, which is exact counting at one call per request; 1200/minute
leases 12, so a cached read pays the round trip once in 12. The cap keeps what
a process may strand small; past 100 the saving per request is under 0.002 ms.
A lease is good for the window indexes it was taken in; once one rolls over,
its tokens are void and Redis is asked again. That same script call hands
them back to the windows that did not roll over (the hour of
``"1000/second;100000/hour"``), which would otherwise lose up to a lease
each second; only as far as the new grant takes the count up again, though,
since a count that fell would make what remains rise (the rest stay counted:
that happens only when the new short window is spent already).

The trade: Redis grants only what every window can spare, so across any
number of processes a budget is never exceeded in a window. But tokens leased
held by other processes cannot be spent here, so a client can be refused
early, by at most (processes - 1) x (lease - 1) requests a window: typically
a request that reached a process holding none while another still holds some
(those are spent if the client's next requests reach it). While one thread
of a process refills a client, the others that find no token ask for just
their own (a burst of 100 concurrent requests leases 12 + 99, not 100 x 12),
and the refilling thread looks for a lease once more before asking, so a
process holds at most one lease of a client: lease - 1 tokens unspent.

``r`` in the ``RateLimit`` header never rises within a window and never
exceeds what the client has left (the budget less the requests served).
While one process holds the client's tokens in the current windows, ``r`` is
exact: Redis's count less that process's unspent tokens. Once the client's
requests reach k processes in those windows (the lease script keeps the set
of them), each of them hears of the others' leases (``api.guards.lease_news``:
one message per lease to each other process in the set, none for a client
served by one) and counts every leased token as spent: ``r`` is then the
budget less Redis's count, below the truth by the tokens leased and not yet
spent, at most k x (lease - 1) (22 of 1200 a minute with two processes). A
lease that sent news costs a second round trip (a PING) so that the news is
in the other processes' sockets before this response leaves; spending from
memory costs one ``poll`` of that socket. ``t`` is exact.

When Redis fails, limiting fails open: the request is served unlimited, with
a ``shelf.limits`` log line and ``shelf_rate_limit_storage_errors_total``; a
circuit breaker keeps an outage from costing a Redis timeout per request.
Tokens a process already holds are still spent (and their headers sent)
while Redis is down, counted as spent in ``r`` (another process could lease
unheard meanwhile); until its news channel is back, a process leases one
token at a time.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import redis
from flask import Flask, Response, current_app, g, request
from limits import parse_many
from prometheus_client import CollectorRegistry, Counter
from werkzeug.exceptions import HTTPException

from cache.backends.cluster import client_from_url
from cache.breaker import Breaker
from catalog.config import ConfigError, Settings

from ..errors import render
from .auth import client_for
from .lease_news import LeaseNews, News, news_tag

log = logging.getLogger("shelf.limits")

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"})
"""Probes, metrics and docs: an orchestrator or a browser must never be throttled out of them."""

EXEMPT_PREFIX = "/docs/"
"""The docs page's own files (api.docs_page)."""

STORAGE_TIMEOUT_SECONDS = 0.25
"""Redis socket timeouts for the counters: a slow Redis must not hold requests up."""

BREAKER_COOLDOWN_SECONDS = 5.0
"""After a storage failure, requests go unlimited without touching Redis for this long."""

LEASE_DIVISOR = 100
"""A lease is at most 1/LEASE_DIVISOR of a window's budget: 1% early refusal at most per other process."""

LEASE_CAP = 100
"""Largest lease: one round trip per 100 requests is already negligible; more only strands tokens."""

MAX_LEASES = 10_000
"""Past this many leases in a process, stale ones are dropped (all of them, if mostly live)."""

REGISTRY_KEY = "shelf.metrics_registry"
EXTENSION_KEY = "shelf.limiter"
SPENT = "shelf.rate_limit_hits"
"""WSGI environ key: the token this request already spent, as the windows' states."""


@dataclass(frozen=True)
class Window:
    name: str  # as the headers name it: "reads", or "reads-60s" when a budget has several windows
    amount: int
    seconds: int
    policy: str = field(init=False, repr=False, compare=False)  # its item of the RateLimit-Policy field

    def __post_init__(self) -> None:
        object.__setattr__(self, "policy", f'"{self.name}";q={self.amount};w={self.seconds}')


class Hit(NamedTuple):
    """One window's state as this request's headers report it (a tuple: one is built per request)."""

    window: Window
    remaining: int
    reset: int  # seconds until the window starts over
    breached: bool = False


def budget(scope: str, setting: str, value: str) -> list[Window]:
    try:
        items = parse_many(value)
    except ValueError as exc:
        raise ConfigError(f"{setting} must look like '120/minute', got {value!r}") from exc
    seconds = [item.get_expiry() for item in items]
    return [
        Window(scope if len(items) == 1 else f"{scope}-{span}s", item.amount, span)
        for item, span in zip(items, seconds, strict=True)
    ]


def lease_size(windows: list[Window]) -> int:
    """How many tokens one script call asks for (see the module docstring for the numbers)."""
    return max(1, min(LEASE_CAP, min(window.amount for window in windows) // LEASE_DIVISOR))


def window_indexes(windows: list[Window], now: float) -> tuple[int, ...]:
    return tuple(int(now // window.seconds) for window in windows)


def hits_for(
    windows: list[Window],
    indexes: tuple[int, ...],
    counts: tuple[int, ...],
    held: int,
    now: float,
    refused: bool = False,
) -> list[Hit]:
    """The headers' view: what Redis's counts leave, and the ``held`` tokens this process leased
    but has not spent (0 when other processes hold some too: see the module docstring)."""
    return [
        Hit(
            window,
            remaining=max(0, window.amount - count + held),
            reset=max(1, math.ceil((index + 1) * window.seconds - now)),
            breached=refused and count >= window.amount,
        )
        for window, index, count in zip(windows, indexes, counts, strict=True)
    ]


# KEYS: one counter per window, then the set of processes that leased in these windows (their
# news channels). ARGV: the tokens wanted, then each window's amount, each window's expiry, the
# tokens handed back to each window (see ``Leases.hand_back``), this process's channel ("" for
# none), the set's expiry and the news tag (``lease_news.news_tag``). Hands those tokens back,
# then grants the most every window can spare, up to the tokens wanted, and counts them; a window
# with nothing to spare makes it grant 0. A count never falls: tokens handed back beyond the new
# grant stay counted, so what remains never rises within a window. When a count changed, the new
# counts go to every other process in the set. Returns the grant, how many other processes are in
# the set, how many were sent the counts, then each count.
LEASE_SCRIPT = """
local n, grant, before, counts, changed = #KEYS - 1, tonumber(ARGV[1]), {}, {}, false
for i = 1, n do
    before[i] = redis.call('GET', KEYS[i])
    counts[i] = math.max(0, (tonumber(before[i]) or 0) - tonumber(ARGV[1 + 2 * n + i]))
    grant = math.min(grant, tonumber(ARGV[1 + i]) - counts[i])
end
grant = math.max(grant, 0)
for i = 1, n do
    local change = math.max(counts[i] + grant - (tonumber(before[i]) or 0), 0)
    counts[i] = (tonumber(before[i]) or 0) + change
    if change ~= 0 then
        changed = true
        redis.call('INCRBY', KEYS[i], change)
        if not before[i] then redis.call('EXPIRE', KEYS[i], ARGV[1 + n + i]) end
    end
end
local holders, me = KEYS[n + 1], ARGV[2 + 3 * n]
if me ~= '' and redis.call('SADD', holders, me) == 1 then redis.call('EXPIRE', holders, ARGV[3 + 3 * n]) end
local others, sent = 0, 0
for _, other in ipairs(redis.call('SMEMBERS', holders)) do
    if other ~= me then
        others = others + 1
        if changed then
            redis.call('PUBLISH', other, table.concat(counts, ',') .. ' ' .. ARGV[4 + 3 * n])
            sent = sent + 1
        end
    end
end
return {grant, others, sent, unpack(counts)}
"""


@dataclass(frozen=True)
class Grant:
    """Redis's answer: ``granted`` tokens (0: over budget) and each window's count after granting;
    ``shared`` when another process leased this budget's tokens in these windows too."""

    indexes: tuple[int, ...]
    granted: int
    counts: tuple[int, ...]
    shared: bool = False


class RedisCounter:
    """Fixed-window counters: one script call (one round trip) per lease, whatever the windows.

    A client's keys share a hash tag, so the script touches one Redis Cluster slot.
    """

    def __init__(self, client: redis.Redis, prefix: str):
        self.client, self.prefix = client, prefix
        self._lease = client.register_script(LEASE_SCRIPT)

    def hit(
        self,
        key: tuple[str, str],
        windows: list[Window],
        now: float,
        want: int = 1,
        handed_back: tuple[int, ...] = (),
        channel: str = "",
    ) -> Grant:
        """Take up to ``want`` tokens from every window of a client's budget (``key``: client, budget
        name), after handing some back; ``channel`` is where this process hears of other leases."""
        who, indexes = key[0], window_indexes(windows, now)
        keys = [f"{self.prefix}:{{{who}}}:{w.name}:{i}" for w, i in zip(windows, indexes, strict=True)]
        keys.append(f"{self.prefix}:{{{who}}}:{key[1]}-holders:{'.'.join(map(str, indexes))}")
        amounts = [window.amount for window in windows]
        expiries = [window.seconds + 1 for window in windows]
        handed_back = handed_back or (0,) * len(windows)
        args = [want, *amounts, *expiries, *handed_back, channel, min(expiries), news_tag(key, indexes)]
        granted, others, sent, *counts = self._lease(keys=keys, args=args)
        if sent:
            # Redis writes the news out before it reads a later command: once this answers, the news
            # is in the other processes' sockets, ahead of any request the client sends them next.
            self.client.ping()
        return Grant(indexes, granted, tuple(counts), shared=others > 0)


@dataclass
class Lease:
    indexes: tuple[int, ...]  # the windows it was taken in: good for those only
    counts: tuple[int, ...]  # Redis's counts as last heard (the lease's answer, then news), for the headers
    left: int  # tokens not yet spent, always at least 1 while in the table
    ends: float  # when its first window rolls over
    shared: bool = False  # another process leased this budget's tokens in these windows too

    def held(self) -> int:
        """The unspent tokens the headers count as remaining: only while no other process holds some,
        whose unspent tokens this process cannot see (counting its own then would let ``r`` rise)."""
        return 0 if self.shared else self.left

    def heard(self, news: News) -> None:
        """Another process leased: Redis's counts are higher now."""
        if news.indexes == self.indexes:
            self.counts = tuple(map(max, self.counts, news.counts))
            self.shared = True

    def pool(self, other: Lease) -> None:
        """Take in another thread's lease of the same windows (leased at the same time)."""
        self.left += other.left
        self.counts = tuple(map(max, self.counts, other.counts))
        self.shared = self.shared or other.shared


class Leases:
    """The tokens this process holds, per (client key, budget scope); shared by the worker's threads.

    With ``news``, a lease's counts follow other processes' leases; without it (or while its channel
    is down) only single tokens are leased, whose counts are Redis's at the time.
    """

    def __init__(self, limit: int = MAX_LEASES, news: LeaseNews | None = None):
        self.limit, self.news = limit, news
        self._table: dict[tuple[str, str], Lease] = {}
        self._refilling: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._table)

    def channel(self) -> str:
        """Where this process hears other leases: "" while it cannot (lease one token at a time then)."""
        if self.news is None:
            return ""
        with self._lock:
            return self.news.channel()

    def spend(self, key: tuple[str, str], windows: list[Window], now: float) -> list[Hit] | None:
        """One token from a lease good for now, and the hits to report; None when there is none."""
        indexes = window_indexes(windows, now)
        pending = self.news is not None and self.news.pending()  # polled outside the lock: see near.py
        with self._lock:
            if pending:
                self._catch_up()
            lease = self._table.get(key)
            if lease is None or lease.indexes != indexes:
                return None
            lease.left -= 1
            counts, held = lease.counts, lease.held()
            if not lease.left:
                del self._table[key]
        return hits_for(windows, indexes, counts, held, now)

    def start_refill(self, key: tuple[str, str]) -> bool:
        """True if this thread leases for ``key``; False while another one is (ask for 1 token then)."""
        with self._lock:
            if key in self._refilling:
                return False
            self._refilling.add(key)
            return True

    def end_refill(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._refilling.discard(key)

    def hand_back(self, key: tuple[str, str], indexes: tuple[int, ...]) -> tuple[int, ...]:
        """Take out a lease some window's rollover voided; its tokens, per window still counting them.

        With several windows, a rollover of the short one would otherwise strand up to a lease in the
        long ones each time. Only the refilling thread calls it, so only one hands the tokens back.
        """
        with self._lock:
            lease = self._table.get(key)
            if lease is None or lease.indexes == indexes:
                return (0,) * len(indexes)
            del self._table[key]
        return tuple(lease.left if old == new else 0 for old, new in zip(lease.indexes, indexes, strict=True))

    def keep(self, key: tuple[str, str], windows: list[Window], grant: Grant, now: float) -> list[Hit]:
        """Keep a grant less this request's token; the hits to report (breached when nothing was granted)."""
        if not grant.granted:
            return hits_for(windows, grant.indexes, grant.counts, 0, now, refused=True)
        with self._lock:
            lease = Lease(grant.indexes, grant.counts, grant.granted - 1, 0.0, grant.shared)
            held = self._table.get(key)
            if held is not None and held.indexes == grant.indexes:  # another thread's: pool, never drop
                lease.pool(held)
            if lease.left:
                lease.ends = min((i + 1) * w.seconds for w, i in zip(windows, grant.indexes, strict=True))
                self._store(key, lease, now)
        return hits_for(windows, grant.indexes, lease.counts, lease.held(), now)

    def _catch_up(self) -> None:
        """Apply the news that arrived (call under the lock). When the channel failed, the leases held
        are still spent (Redis may be down: see the module docstring), but as if shared: another
        process may join unheard."""
        news = self.news.read()
        for item in news if news is not None else ():
            lease = self._table.get(item.key)
            if lease is not None:
                lease.heard(item)
        if news is None:
            for lease in self._table.values():
                lease.shared = True

    def _store(self, key: tuple[str, str], lease: Lease, now: float) -> None:
        if len(self._table) >= self.limit and key not in self._table:
            self._table = {k: held for k, held in self._table.items() if held.ends > now}
            if len(self._table) > self.limit // 2:
                self._table = {}  # mostly live leases: dropping tokens is safe, only early refusals
        self._table[key] = lease


class RateLimited(HTTPException):
    code = 429

    def __init__(self, hits: list[Hit]):
        super().__init__()
        self.hits = hits


class RateLimiter:
    def __init__(
        self,
        counter: RedisCounter,
        reads: list[Window],
        writes: list[Window],
        errors: Counter,
        clock: Callable[[], float] = time.time,
        news: LeaseNews | None = None,
    ):
        self.counter, self.reads, self.writes, self.errors, self.clock = counter, reads, writes, errors, clock
        self.breaker = Breaker(threshold=1, cooldown=BREAKER_COOLDOWN_SECONDS)
        self.leases = Leases(news=news)

    def close(self) -> None:
        """Close the lease news channel (its Redis connection), if one is open."""
        if self.leases.news is not None:
            self.leases.news.close()

    def check(self) -> None:
        """before_request: spend one token of this request's budget; 429 when none is left."""
        if request.path in EXEMPT_PATHS or request.path.startswith(EXEMPT_PREFIX):
            return
        if SPENT in request.environ:  # api.fast_path spent it already, then handed the request on
            hits = request.environ[SPENT]
        else:
            request_id = g.get("request_id")
            if request.method in READ_METHODS:
                hits = self.spend_read(request.remote_addr, request_id)
            else:
                hits = self.spend(write_key(), self.writes, "writes", request_id)
        if hits is None:
            return
        g.rate_limit_hits = hits
        if any(hit.breached for hit in hits):
            raise RateLimited(hits)

    def spend(
        self, client: str, windows: list[Window], budget: str, request_id: str | None
    ) -> list[Hit] | None:
        """Spend one of ``client``'s tokens of a budget; the windows' states, or None when unlimited
        (the counter store failed)."""
        key, now = (client, budget), self.clock()
        hits = self.leases.spend(key, windows, now)
        return self.refill(key, windows, now, request_id) if hits is None else hits

    def spend_read(self, remote_addr: str | None, request_id: str | None) -> list[Hit] | None:
        """``spend`` of the read budget, which is per client address (Flask's hook and api.fast_path)."""
        return self.spend(ip_key(remote_addr), self.reads, "reads", request_id)

    def refill(
        self, key: tuple[str, str], windows: list[Window], now: float, request_id: str | None
    ) -> list[Hit] | None:
        """Lease tokens from Redis for this request and the next; None (unlimited) when Redis fails.

        One thread at a time leases for a client; the others ask for their own token meanwhile. The
        leading thread looks for a lease once more first (one may have been kept since this thread
        found none), so a process holds at most one lease of a client's tokens: lease - 1 unspent."""
        if not self.breaker.allow():
            return None
        leading = lease_size(windows) > 1 and self.leases.start_refill(key)
        try:
            if leading and (hits := self.leases.spend(key, windows, now)) is not None:
                return hits
            return self.lease(key, windows, now, leading, request_id)
        finally:
            if leading:
                self.leases.end_refill(key)

    def lease(
        self, key: tuple[str, str], windows: list[Window], now: float, leading: bool, request_id: str | None
    ) -> list[Hit] | None:
        try:
            channel = self.leases.channel() if leading else ""  # the others keep no tokens
            want = lease_size(windows) if leading and channel else 1
            handed_back = self.leases.hand_back(key, window_indexes(windows, now)) if leading else ()
            grant = self.counter.hit(key, windows, now, want, handed_back, channel)
        except redis.RedisError as exc:
            self.storage_failed(exc, request_id)
            return None
        self.breaker.record_success()
        return self.leases.keep(key, windows, grant, now)

    def storage_failed(self, exc: Exception, request_id: str | None) -> None:
        self.breaker.record_failure()
        self.errors.inc()
        log.warning(
            "rate limit storage unavailable; serving without limits",
            extra={"fields": {"request_id": request_id, "error": str(exc)}},
        )


def ip_key(remote_addr: str | None) -> str:
    return "ip:" + (remote_addr or "unknown")


def write_key() -> str:
    """The token's name, so a client's budget follows it across addresses; else its IP."""
    name = client_for(request.headers.get("Authorization"), current_app.config["SHELF"].api_tokens)
    return "token:" + name if name else ip_key(request.remote_addr)


def rate_limit_headers(hits: list[Hit]) -> dict[str, str]:
    headers = {
        "RateLimit-Policy": ", ".join([hit.window.policy for hit in hits]),
        "RateLimit": ", ".join([f'"{h.window.name}";r={h.remaining};t={h.reset}' for h in hits]),
    }
    if resets := [hit.reset for hit in hits if hit.breached]:
        headers["Retry-After"] = str(max(resets))
    return headers


def add_headers(response: Response) -> Response:
    hits = g.get("rate_limit_hits")
    if hits:
        response.headers.extend(rate_limit_headers(hits))  # nothing else sets them: no need to replace
    return response


def handle_rate_limited(error: RateLimited) -> Response:
    breached = next(hit for hit in error.hits if hit.breached)
    budget_name = breached.window.name.split("-")[0]
    limit = f"{breached.window.amount} per {breached.window.seconds} s"
    detail = f"too many {budget_name}: the limit is {limit}; retry after Retry-After seconds"
    return render(429, "Too Many Requests", detail)


def metrics_registry(app: Flask) -> CollectorRegistry:
    """The registry ``api.metrics`` creates and ``/metrics`` serves (a new one if it has not run)."""
    return app.extensions.setdefault(REGISTRY_KEY, CollectorRegistry())


def init_app(app: Flask, settings: Settings) -> None:
    if not settings.rate_limits_enabled:
        return
    reads = budget("reads", "SHELF_RATE_LIMIT_READS", settings.rate_limit_reads)
    writes = budget("writes", "SHELF_RATE_LIMIT_WRITES", settings.rate_limit_writes)
    client = client_from_url(settings.queue_url, STORAGE_TIMEOUT_SECONDS, retries=False)
    errors = Counter(
        "shelf_rate_limit_storage_errors",
        "Requests served without rate limiting because the counter store failed",
        registry=metrics_registry(app),
    )
    counter = RedisCounter(client, settings.limits_prefix)
    limiter = RateLimiter(counter, reads, writes, errors, news=LeaseNews(client, settings.limits_prefix))
    app.extensions[EXTENSION_KEY] = limiter
    app.before_request(limiter.check)
    app.after_request(add_headers)
    app.register_error_handler(RateLimited, handle_rate_limited)
