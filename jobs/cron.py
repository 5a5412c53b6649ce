"""Periodic jobs, queued by ``python -m jobs.cron`` beside the worker (the run command and compose start it).

* the full aggregate recompute, the backstop for any recompute a write could
  not queue (every ``FULL_RECOMPUTE_SECONDS``, an hour);
* the outbox drain, for cache invalidations a crashed process left behind
  (every ``OUTBOX_DRAIN_SECONDS``);
* the replay of recompute requests that writes recorded but did not queue
  (every ``OUTBOX_DRAIN_SECONDS`` too; see ``catalog.recomputes``).

Each is queued at start and then every interval, debounced like any job (one
waits per kind, so several of these loops, or a slow worker, never pile them
up). While the queue's Redis is unreachable the loop logs it and tries again
every ``RETRY_SECONDS`` (not a whole interval later: the hourly backstop must
not skip an hour for a ten-second outage), and never exits for it.

Written by hand rather than ``rq cron``: rq 3.0's cron builds its queue
without the serializer it is given, so it queues pickles that a JSON worker
cannot read, and Shelf pickles nothing.
"""

from __future__ import annotations

import logging
import signal
import threading
import time

import redis

from catalog import queues
from catalog.config import Settings

from . import aggregates, maintenance

FULL_RECOMPUTE_SECONDS = 3600
"""Interval of the full aggregate recompute, the backstop for recomputes a write could not queue."""
OUTBOX_DRAIN_SECONDS = 10
TICK_SECONDS = 1.0
RETRY_SECONDS = 5.0
"""How soon a periodic job the queue could not take is tried again."""

log = logging.getLogger("shelf.cron")


def schedule() -> list[tuple[str, object, float]]:
    """(policy kind, job function, interval in seconds) for each periodic job."""
    return [
        ("recompute_all", aggregates.recompute_all, FULL_RECOMPUTE_SECONDS),
        ("drain_outbox", maintenance.drain_outbox, OUTBOX_DRAIN_SECONDS),
        ("send_recomputes", maintenance.send_recomputes, OUTBOX_DRAIN_SECONDS),
    ]


def tick(connection: redis.Redis, entries, next_due: dict[str, float], now: float) -> list[str]:
    """Queue every entry that is due; returns the kinds queued."""
    queued = []
    for kind, func, interval in entries:
        if now < next_due.get(kind, 0.0):
            continue
        try:
            if queues.enqueue_debounced(connection, kind, f"cron:{kind}", func, delay=0):
                queued.append(kind)
        except redis.RedisError as exc:
            log.warning("periodic %s not queued (%s); retrying in %.0f s", kind, exc, RETRY_SECONDS)
            next_due[kind] = now + min(interval, RETRY_SECONDS)
            continue
        next_due[kind] = now + interval
    return queued


def run(settings: Settings, stop: threading.Event) -> None:
    connection, entries, next_due = queues.connect(settings.queue_url), schedule(), {}
    while not stop.is_set():
        tick(connection, entries, next_due, time.monotonic())
        stop.wait(TICK_SECONDS)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_args: stop.set())
    settings = Settings.from_env()
    log.info("queuing periodic jobs: %s", [(kind, every) for kind, _func, every in schedule()])
    run(settings, stop)


if __name__ == "__main__":
    main()
