"""Aggregate recomputes that writes call for, made as durable as cache invalidations.

A review schedules its product's recompute (rating, then its categories' stats)
on ``high``; a product created, changed, moved or deleted schedules its
categories' stats on ``default``. Each request is written as a
``recompute_requests`` row in the write's own transaction, like the cache
outbox. After the commit it is queued, debounced per target (see
``catalog.queues``), and its row deleted. When the queue's Redis is unreachable, or
the process dies first, the row stays and is sent again:

* by a background retry in the process whose send failed, every second until
  none is left, so a review's rating follows within seconds of the queue
  returning;
* by the ``send_recomputes`` job that ``jobs.cron`` queues every few seconds,
  for rows a dead process left behind.

A replay sends each target once, however many writes asked for it, and without
the debounce delay (the outage has already gathered the burst). Sending twice
is harmless: the pending mark lets one job wait per target, and a recompute
rebuilds from the rows beneath.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import redis
from sqlalchemy import delete, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from catalog import queues

from .config import Settings
from .models import RecomputeRequest
from .retries import BackgroundRetry
from .services.effects import AGGREGATES, REVIEW, Change

log = logging.getLogger("shelf.jobs")

JOBS = {
    "recompute_product": "jobs.aggregates.recompute_product",
    "recompute_categories": "jobs.aggregates.recompute_categories",
}
"""By name, as rq takes them: ``jobs.aggregates`` imports the app, which imports this module."""
REPLAY_BATCH = 200


def requests_for(change: Change) -> list[dict]:
    """The recomputes ``change`` calls for, as (kind, target, args) rows."""
    if change.kind == AGGREGATES:  # a recompute's own change must not schedule another
        return []
    if change.kind == REVIEW:
        return [
            {"kind": "recompute_product", "target": f"product:{pid}", "args": [pid]}
            for pid in change.product_ids
        ]
    if change.category_ids:
        ids = list(change.category_ids)
        return [
            {"kind": "recompute_categories", "target": "categories:" + ",".join(map(str, ids)), "args": [ids]}
        ]
    return []


class RecomputeRequests:
    """Effect: records a write's recompute requests, sends them after commit, replays what is left."""

    def __init__(self, engine: Engine, connection: redis.Redis, settings: Settings):
        self.engine, self.connection, self.settings = engine, connection, settings
        self._retry = BackgroundRetry(
            "shelf-recompute-retry",
            self.replay,
            self.pending,
            (redis.RedisError, SQLAlchemyError),
            "recompute requests caught up: the queue is back",
            log,
        )

    def prepare(self, db: Session, change: Change) -> Callable[[], None] | None:
        requests = requests_for(change)
        if not requests:
            return None
        rows = [RecomputeRequest(**request) for request in requests]
        db.add_all(rows)
        db.flush()
        row_ids = [row.id for row in rows]
        return lambda: self.send_committed(row_ids, requests)

    def send_committed(self, row_ids: list[int], requests: list[dict]) -> None:
        try:
            for request in requests:
                self._enqueue(request, delay=self.settings.recompute_debounce_seconds)
        except redis.RedisError as exc:
            log.warning(
                "recomputes %s kept until the queue is back: %s", [r["target"] for r in requests], exc
            )
            self.retry_in_background()
            return
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(RecomputeRequest).where(RecomputeRequest.id.in_(row_ids)))
        except SQLAlchemyError:
            log.warning("queued recomputes %s stay recorded until a replay", row_ids, exc_info=True)

    def replay(self) -> int:
        """Queue every recorded request, each target once; returns how many targets. Raises
        ``redis.RedisError`` if the queue cannot take them; they stay recorded then."""
        sent = 0
        while True:
            with self.engine.begin() as conn:
                rows = conn.execute(
                    select(
                        RecomputeRequest.id,
                        RecomputeRequest.kind,
                        RecomputeRequest.target,
                        RecomputeRequest.args,
                    )
                    .order_by(RecomputeRequest.id)
                    .limit(REPLAY_BATCH)
                    .with_for_update(skip_locked=True)
                ).all()
                if not rows:
                    return sent
                targets = {row.target: row._asdict() for row in rows}
                for request in targets.values():
                    self._enqueue(request, delay=0)
                conn.execute(
                    delete(RecomputeRequest).where(RecomputeRequest.id.in_([row.id for row in rows]))
                )
            sent += len(targets)

    def pending(self) -> int:
        with self.engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(RecomputeRequest))

    def retry_in_background(self) -> None:
        """Start (once per process) a thread that replays every second until nothing is left."""
        self._retry.start()

    def _enqueue(self, request: dict, delay: int) -> None:
        queues.enqueue_debounced(
            self.connection,
            request["kind"],
            request["target"],
            JOBS[request["kind"]],
            *request["args"],
            delay=delay,
            eager=self.settings.jobs_eager,
        )
