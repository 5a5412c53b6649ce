"""Lease news: what other processes' leases did to the budgets of clients this process holds tokens of.

The rate limiter's ``RateLimit`` header reports what remains of a client's budget. A process that
spends tokens from memory knows Redis's counts only as of its own last lease; when the client's
requests also reach other processes, their leases raise the counts meanwhile. So each process
subscribes to a channel of its own, and the lease script, which keeps the set of processes that
leased a client's tokens in the current windows, publishes the new counts to every other one of
them (``api.guards.rate_limits.LEASE_SCRIPT``). A client served by one process costs no message.

The leasing process sends one PING after a script call that published: Redis writes out every
reply and message of a loop before it reads a later command, so once the PING answers, the news is
in the other processes' sockets, before the response that lease served leaves. The client's next
request, wherever it lands, finds it there: every spend polls this socket first (one ``poll``,
under a microsecond; ``cache.backends.near.readable``) and applies what arrived. The channel is
on a RESP2 connection of its own; when it fails, the leases it reported on are void (their news
is lost) and the process leases one token at a time until a new channel is up, at most once a
second. A half-open connection that never errors is not detected: its process would report stale
counts (what remains too high) until its leases run out, never spend more than the budget.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable
from typing import NamedTuple

import redis

from cache.backends.near import readable

log = logging.getLogger("shelf.limits")

RECONNECT_SECONDS = 1.0
"""Least time between attempts to bring a lost channel back."""


class News(NamedTuple):
    """Redis's counts of one client's budget after another process's lease."""

    key: tuple[str, str]  # (client, budget) as ``Leases`` keys it
    indexes: tuple[int, ...]
    counts: tuple[int, ...]


def news_tag(key: tuple[str, str], indexes: tuple[int, ...]) -> str:
    """What the lease script publishes after the counts: the budget, the window indexes, the client
    last (the one part that may hold a space)."""
    return f"{key[1]} {','.join(map(str, indexes))} {key[0]}"


def parse_news(data: bytes) -> News:
    counts, scope, indexes, client = data.decode().split(" ", 3)
    return News((client, scope), _ints(indexes), _ints(counts))


def _ints(csv: str) -> tuple[int, ...]:
    return tuple(int(item) for item in csv.split(","))


class LeaseNews:
    """This process's channel. Call ``channel`` and ``read`` under the caller's lock; ``pending`` is
    safe without it."""

    def __init__(self, client: redis.Redis, prefix: str, clock: Callable[[], float] = time.monotonic):
        self.client, self.prefix, self.clock = client, prefix, clock
        self._connection: redis.connection.AbstractConnection | None = None
        self._fd: int | None = None
        self._channel = ""
        self._pid = os.getpid()
        self._next_attempt = 0.0

    def pending(self) -> bool:
        """Whether anything arrived (or the connection closed): then ``read`` has work."""
        fd = self._fd
        return fd is not None and readable(fd)

    def channel(self) -> str:
        """The channel other processes' news reaches this one on; "" while there is none. Raises
        ``redis.ConnectionError`` when bringing one back finds Redis unreachable."""
        if self._pid != os.getpid():  # a forked child: the parent's socket is not ours to read
            self._connection, self._fd, self._channel, self._pid = None, None, "", os.getpid()
        if self._connection is None and self.clock() >= self._next_attempt:
            self._subscribe()
        return self._channel

    def read(self) -> list[News] | None:
        """The news that arrived; None when the channel failed (its earlier subscribers missed news)."""
        news: list[News] = []
        try:
            while self._connection.can_read(timeout=0):
                message = self._connection.read_response()
                if isinstance(message, list) and message[0] == b"message":
                    news.append(parse_news(message[2]))
        except (redis.RedisError, OSError, ValueError) as exc:
            log.warning("rate limit lease news lost (%s); leasing one token at a time until it is back", exc)
            self.close()
            return None
        return news

    def close(self) -> None:
        if self._connection is not None:
            self._connection.disconnect()
        self._connection, self._fd, self._channel = None, None, ""
        self._next_attempt = self.clock() + RECONNECT_SECONDS

    def _subscribe(self) -> None:
        self._next_attempt = self.clock() + RECONNECT_SECONDS
        pool = self.client.connection_pool
        connection = pool.connection_class(**{**pool.connection_kwargs, "protocol": 2})
        channel = f"{self.prefix}:news:{uuid.uuid4().hex}"
        try:
            connection.connect()
            connection.send_command("SUBSCRIBE", channel)
            connection.read_response()  # confirmed: news sent from now on reaches this process
        except (redis.ConnectionError, redis.TimeoutError):
            connection.disconnect()
            raise  # Redis is unreachable: the limiter's storage failure (one log line, the breaker)
        except redis.RedisError as exc:  # refused (an ACL without pub/sub): the counters may still work
            connection.disconnect()
            log.warning("rate limit lease news unavailable (%s); leasing one token at a time", exc)
            return
        self._connection, self._fd, self._channel = connection, connection._sock.fileno(), channel
