"""Periodic jobs, queued by ``python -m jobs.cron`` beside the worker (the run command and compose start it).

* the full aggregate recompute, the backstop for any recompute a write could
  not queue (every ``FULL_RECOMPUTE_SECONDS``, an hour);
* the outbox drain, for cache invalidations a crashed process left behind
  (every ``OUTBOX_DRAIN_SECONDS``);
* the replay of recompute requests that writes recorded but did not queue
  (every ``OUTBOX_DRAIN_SECONDS`` too; see ``catalog.recomputes``).

Each is queued at start and then every interval, debounced like any job (one
waits per kind, so several of these loops, or a slow worker, never pile them
up). The two that work off rows are queued only when their tables hold some:
an idle catalog then costs an ``EXISTS`` query per table every interval instead
of two jobs and their eight worker log lines. While the queue's Redis is
unreachable the loop logs it and tries again every ``RETRY_SECONDS`` (not a
whole interval later: the hourly backstop must not skip an hour for a
ten-second outage), and never exits for it.

Written by hand rather than ``rq cron``: rq 3.0's cron builds its queue
without the serializer it is given, so it queues pickles that a JSON worker
cannot read, and Shelf pickles nothing.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable

import redis
from sqlalchemy import Engine, exists, select
from sqlalchemy.exc import SQLAlchemyError

from catalog import queues
from catalog.config import Settings
from catalog.db import make_engine
from catalog.models import CacheOutbox, EdgePurge, RecomputeRequest

from . import aggregates, maintenance

FULL_RECOMPUTE_SECONDS = 3600
"""Interval of the full aggregate recompute, the backstop for recomputes a write could not queue."""
OUTBOX_DRAIN_SECONDS = 10
TICK_SECONDS = 1.0
RETRY_SECONDS = 5.0
"""How soon a periodic job the queue could not take is tried again."""

log = logging.getLogger("shelf.cron")


Waiting = Callable[[tuple], bool]


def schedule() -> list[tuple[str, object, float, tuple]]:
    """(policy kind, job function, interval in seconds, the tables whose rows it works off: empty
    for a job that runs every interval) for each periodic job."""
    return [
        ("recompute_all", aggregates.recompute_all, FULL_RECOMPUTE_SECONDS, ()),
        ("drain_outbox", maintenance.drain_outbox, OUTBOX_DRAIN_SECONDS, (CacheOutbox, EdgePurge)),
        ("send_recomputes", maintenance.send_recomputes, OUTBOX_DRAIN_SECONDS, (RecomputeRequest,)),
    ]


def rows_waiting(engine: Engine) -> Waiting:
    """Whether any of the tables holds a row; True when the database cannot say (the job finds out)."""

    def waiting(tables: tuple) -> bool:
        try:
            with engine.connect() as conn:
                return any(conn.scalar(select(exists().select_from(table))) for table in tables)
        except SQLAlchemyError:
            return True

    return waiting


def tick(
    connection: redis.Redis, entries, next_due: dict[str, float], now: float, waiting: Waiting | None = None
) -> list[str]:
    """Queue every entry that is due (and, with ``waiting``, has rows to work off); returns the kinds
    queued."""
    queued = []
    for kind, func, interval, tables in entries:
        if now < next_due.get(kind, 0.0):
            continue
        if tables and waiting is not None and not waiting(tables):
            next_due[kind] = now + interval
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
    engine = make_engine(settings)
    waiting = rows_waiting(engine)
    try:
        while not stop.is_set():
            tick(connection, entries, next_due, time.monotonic(), waiting)
            stop.wait(TICK_SECONDS)
    finally:
        engine.dispose()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_args: stop.set())
    settings = Settings.from_env()
    log.info("queuing periodic jobs: %s", [(kind, every) for kind, _func, every, _tables in schedule()])
    run(settings, stop)


if __name__ == "__main__":
    main()
