"""Readiness after a start: ``/readyz`` says "warming" until the warm on start has done enough.

A load balancer that checks ``/readyz`` (compose's scale-out profile does) then sends traffic only to
an instance whose cache is warm. The warm on start (``jobs.warming.warm_on_start``, queued once per
server start) fills the most read list pages and products in order of reads and reports, after each
batch, the share of all recorded reads it has filled so far: the hit ratio the cache would have
served those reads with. The instance is ready when that share reaches ``Settings.warm_ready_ratio``,
when the warm is done, or when ``Settings.warm_ready_seconds`` have passed since the app started,
whichever comes first (no worker running must not keep an instance out forever). Once ready it
stays ready: a later warm (a second instance starting) does not take it out again.

The progress lives in one Redis key on the queue's server, next to the popularity counts it is
computed from; it is deleted when a start queues its warm, so a warm of an earlier start does not
count. What is read back is validated; anything else counts as no progress.
"""

from __future__ import annotations

import time

import orjson
import redis

PROGRESS_KEY = "shelf-jobs:warm-on-start"
PROGRESS_TTL_SECONDS = 24 * 3600


def restart(connection: redis.Redis) -> None:
    """A start is about to queue its warm: progress starts from nothing."""
    connection.delete(PROGRESS_KEY)


def report(connection: redis.Redis, covered: float, done: bool) -> None:
    body = orjson.dumps({"covered": round(min(max(covered, 0.0), 1.0), 4), "done": done})
    connection.set(PROGRESS_KEY, body, ex=PROGRESS_TTL_SECONDS)


def progress(connection: redis.Redis) -> tuple[float, bool] | None:
    """``(covered, done)`` as the warm last reported it; None when absent, unreadable or malformed."""
    try:
        data = orjson.loads(connection.get(PROGRESS_KEY) or b"null")
    except (redis.RedisError, orjson.JSONDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    covered, done = data.get("covered"), data.get("done")
    if not isinstance(covered, int | float) or isinstance(covered, bool) or not isinstance(done, bool):
        return None
    return (float(covered), done) if 0 <= covered <= 1 else None


class WarmGate:
    """Whether this app is past its warm on start (always, when warm on start is off)."""

    def __init__(
        self, connection: redis.Redis, enabled: bool, goal: float, budget: float, clock=time.monotonic
    ):
        self.connection, self.goal, self.budget, self._clock = connection, goal, budget, clock
        self.started = clock()
        self._ready = not enabled

    def state(self) -> str:
        if not self._ready:
            self._ready = self._clock() - self.started >= self.budget or self._warm_enough()
        return "ok" if self._ready else "warming"

    def _warm_enough(self) -> bool:
        found = progress(self.connection)
        return found is not None and (found[1] or found[0] >= self.goal)
