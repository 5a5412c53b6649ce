"""Purge on write: every write's tags sent to each configured HTTP cache, durably.

A write's invalidation (``catalog.invalidation``) is turned into surrogate keys (``catalog.edge_tags``)
and written as one ``edge_purges`` row per configured edge, in the write's own transaction.
After the commit, once Shelf's own cache has dropped its entries (so an edge that refetches at
once gets the new state), every edge is sent ``PURGE /`` with the tags in ``xkey-purge`` (or
``xkey-softpurge``), all at once, and the write waits for their acks up to
``Settings.edge_purge_timeout_ms``. An acknowledged row is deleted. A row whose edge did not answer
in time, or answered anything but 200, stays; the write still answers 2xx, saying so in its
``X-Edge-Purge: pending`` header, and the rows are replayed like the cache outbox's: by a
background retry in this process every second until none is left, and by the worker's
periodic drain (``jobs.maintenance.drain_outbox``) for rows a dead process left behind.
Purging twice is harmless, so replays may overlap. Replays wait while
the cache outbox has rows: when Redis did not take a write's invalidation, the write purges the
edges at once but keeps its rows, and they are sent again once Redis has caught up, since an edge
refetch in between could store what another process still served from Redis.

The edge's own race, a fetch that read the old state before the commit and is stored after the
purge, is closed in the VCL (``deploy/varnish/shelf.vcl``): an object whose fetch began before
the latest purge is delivered but not stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from contextvars import ContextVar

import urllib3
from sqlalchemy import delete, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from . import edge_tags
from .models import EdgePurge
from .retries import BackgroundRetry

log = logging.getLogger("shelf.edge")

TAGS_PER_REQUEST = 300
"""Tags per PURGE request: ~13 bytes each stays well inside Varnish's 8 KB header limit."""

DRAIN_BATCH = 200
HEADERS = {"purge": "xkey-purge", "softpurge": "xkey-softpurge"}

unacknowledged: ContextVar[int | None] = ContextVar("shelf_edge_unacknowledged", default=None)
"""Edges that did not acknowledge the purges of the current request's writes (None: no purge)."""


class EdgePurger:
    """Writes, sends and replays edge purges for one app (one engine, the configured edges)."""

    def __init__(
        self,
        engine: Engine,
        urls: Iterable[str],
        timeout_ms: int,
        mode: str = "purge",
        cache_pending: Callable[[], int] = lambda: 0,
    ):
        self.engine, self.urls, self.header = engine, tuple(urls), HEADERS[mode]
        self.cache_pending = cache_pending  # Shelf's own invalidations not yet applied (the outbox)
        self.timeout = timeout_ms / 1000
        self.http = urllib3.PoolManager(
            num_pools=max(4, len(self.urls)), maxsize=8, retries=False, timeout=self.timeout
        )
        self.pool = ThreadPoolExecutor(
            max_workers=4 * max(1, len(self.urls)), thread_name_prefix="shelf-edge"
        )
        self._retry = BackgroundRetry(
            "shelf-edge-retry", self.drain, self.pending, (SQLAlchemyError,), "edge purges caught up", log
        )

    # --- the write path ---------------------------------------------------------------------

    def prepare(self, db: Session, invalidation: dict) -> Callable[[bool], None] | None:
        """Outbox follower: the rows go into the write's transaction; sending them, after commit
        and after Shelf's own cache has applied ``invalidation`` (or failed to)."""
        tags = edge_tags.write_tags(invalidation)
        if not tags:
            return None
        rows = [EdgePurge(edge=url, tags=tags) for url in self.urls]
        db.add_all(rows)
        db.flush()
        pending = [(row.id, row.edge, tags) for row in rows]
        return lambda cache_applied: self.send_committed(pending, cache_applied)

    def send_committed(self, pending: list[tuple[int, str, list[str]]], cache_applied: bool = True) -> None:
        """Purge now. When Shelf's own cache did not take the invalidation, an edge that refetched at
        once could store what Redis still holds: the rows stay, and are sent again once it has."""
        sent = self._send(pending)
        acked = sent if cache_applied else []  # purged now, and again once the cache has caught up
        missing = len(pending) - len(acked)
        unacknowledged.set((unacknowledged.get() or 0) + missing)
        self._forget(acked)
        if missing:
            why = (
                "not acknowledged in time" if cache_applied else "Shelf's own cache has not applied the write"
            )
            log.warning("edge purge pending (%s): %d of %d edges", why, missing, len(pending))
            self.retry_in_background()

    # --- replays ----------------------------------------------------------------------------

    def drain(self) -> int:
        """Send the configured edges' pending rows again, each edge's merged into one purge per
        batch, all edges at once; returns how many rows were acknowledged (and deleted). An edge
        that leaves a batch pending is left until the next drain; rows of edges no longer
        configured are left alone. Sends nothing while Shelf's own cache has invalidations
        pending: they go first."""
        if self.cache_pending():
            return 0
        done, edges = 0, set(self.urls)
        while edges:
            with self.engine.begin() as conn:
                batches = {edge: self._batch(conn, edge) for edge in sorted(edges)}
                rows = [row for batch in batches.values() for row in batch]
                acked = set(self._send([(row.id, row.edge, row.tags) for row in rows]))
                if acked:
                    conn.execute(delete(EdgePurge).where(EdgePurge.id.in_(acked)))
            done += len(acked)
            edges = {
                edge
                for edge, batch in batches.items()
                if len(batch) == DRAIN_BATCH and all(row.id in acked for row in batch)
            }
        return done

    def _batch(self, conn, edge: str) -> list:
        return conn.execute(
            select(EdgePurge.id, EdgePurge.edge, EdgePurge.tags)
            .where(EdgePurge.edge == edge)
            .order_by(EdgePurge.id)
            .limit(DRAIN_BATCH)
            .with_for_update(skip_locked=True)
        ).all()

    def pending(self) -> int:
        """Rows the configured edges have not acknowledged."""
        with self.engine.connect() as conn:
            return conn.scalar(
                select(func.count()).select_from(EdgePurge).where(EdgePurge.edge.in_(self.urls))
            )

    def retry_in_background(self) -> None:
        """Drain every second, in one thread per process, until no row is left."""
        self._retry.start()

    # --- sending ----------------------------------------------------------------------------

    def _send(self, rows: list[tuple[int, str, list[str]]]) -> list[int]:
        """Purge each edge of ``rows`` with the union of its rows' tags, all edges at once; the ids
        of the rows whose edge acknowledged within the timeout."""
        by_edge: dict[str, tuple[list[int], set[str]]] = {}
        for row_id, edge, tags in rows:
            ids, union = by_edge.setdefault(edge, ([], set()))
            ids.append(row_id)
            union.update(tags)
        futures = {
            self.pool.submit(self._purge, edge, sorted(tags)): ids for edge, (ids, tags) in by_edge.items()
        }
        done, _ = wait(futures, timeout=self.timeout)
        return [row_id for future in done if future.result() for row_id in futures[future]]

    def _purge(self, edge: str, tags: list[str]) -> bool:
        for start in range(0, len(tags), TAGS_PER_REQUEST):
            value = " ".join(tags[start : start + TAGS_PER_REQUEST])
            try:
                response = self.http.request("PURGE", edge + "/", headers={self.header: value})
            except urllib3.exceptions.HTTPError as exc:
                log.warning("edge %s did not take a purge: %s", edge, exc)
                return False
            if response.status != 200:
                log.warning("edge %s answered a purge with %s", edge, response.status)
                return False
        return True

    def _forget(self, ids: list[int]) -> None:
        if not ids:
            return
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(EdgePurge).where(EdgePurge.id.in_(ids)))
        except SQLAlchemyError:
            log.warning("acknowledged edge purges stay until a drain", exc_info=True)
