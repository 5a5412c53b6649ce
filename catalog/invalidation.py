"""Cache invalidation that survives Redis outages and crashes: the outbox.

Every write records the cache entries it makes stale as a ``cache_outbox``
row, in the write's own transaction. After the commit the row is applied to
Redis (entries and their leases deleted, list and review generations bumped)
and deleted. When Redis is unreachable, or the process dies before applying
it, the row stays and is replayed:

* **before any new Redis connection is used**: every process reconnects after
  a Redis outage or restart (a failed command drops its connection), and the
  connection hook applies pending rows first, bypassing the circuit breaker;
  if it cannot, the connection is refused. So no process reads an entry that
  an outage left stale once Redis is back;
* by a background retry in the process whose apply failed, every second until
  the outbox is empty;
* by ``flask --app api cache drain`` (and the worker, periodically), for rows a
  dead process left behind.

Replays are idempotent: deleting twice or bumping a generation twice costs at
most one extra miss. The one window left: a process whose Redis connections
all stayed healthy while another process could not reach Redis can serve such
an entry until that process's retry succeeds, about a second later.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis
from sqlalchemy import delete, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from cache.api import CacheUnavailable
from cache.keys import CacheKey, KeyBuilder
from cache.region import Region

from . import list_deps
from .models import CacheOutbox, Category, Product
from .services import aggregates
from .services.effects import AGGREGATES, CATEGORY, PRODUCT, REVIEW, Change

log = logging.getLogger("shelf.cache.outbox")

DRAIN_BATCH = 200
RETRY_SECONDS = 1.0


def invalidation_for(db: Session, keys: KeyBuilder, change: Change) -> dict:
    """The entries ``change`` makes stale, as JSON for the outbox: keys to delete, generations and
    guards to bump, list-page dependency tags to drop (see the README's invalidation rules)."""
    slugs = set(change.gone_category_slugs) | _category_slugs(db, change.category_ids)
    stale = [keys.product(pid) for pid in change.product_ids]
    bump, tags = [], []
    if change.kind in (CATEGORY, AGGREGATES):  # what category entries show: names, children, stats
        stale += [keys.category(slug) for slug in sorted(slugs)]
        if change.kind == CATEGORY or change.counts_changed:
            stale.append(keys.category_tree())
    if change.kind == CATEGORY:  # product bodies embed their category's slug and name
        stale += [keys.product(pid) for pid in _products_in(db, change.category_ids)]
        for scope in sorted(slugs):  # its subtree, so its pages' membership, may have changed
            bump += [keys.list_guard(scope, column) for column in list_deps.DEPTH]
            tags.append(keys.list_tag(scope, list_deps.SCOPE_TAG))
    for scope, named in sorted(_list_tags(change).items()):
        bump += [keys.list_guard(scope, column) for column in sorted(list_deps.guards(named))]
        tags += [keys.list_tag(scope, name) for name in sorted(named)]
    if change.kind == REVIEW or (change.kind == PRODUCT and _membership_moved(change)):
        bump += [keys.reviews_generation(pid) for pid in change.product_ids]
    deleted = [[k.resource, k.entry, k.lease, k.generation, k.guard] for k in stale]
    return {"delete": deleted, "bump": bump, "tags": tags}


def _list_tags(change: Change) -> dict[str, set[str]]:
    tags: dict[str, set[str]] = {}
    for before, after in change.listings:
        for scope, named in list_deps.write_tags(before, after).items():
            tags.setdefault(scope, set()).update(named)
    return tags


def _membership_moved(change: Change) -> bool:
    """A product created, deleted, activated or deactivated: its reviews pages answer differently."""
    return any((before is None) != (after is None) for before, after in change.listings)


def _category_slugs(db: Session, category_ids) -> set[str]:
    if not category_ids:
        return set()
    ids = aggregates.categories_affected(db, list(category_ids))
    return set(db.scalars(select(Category.slug).where(Category.id.in_(ids))))


def _products_in(db: Session, category_ids) -> list[int]:
    return list(db.scalars(select(Product.id).where(Product.category_id.in_(category_ids))))


def merge(invalidations: list[dict]) -> tuple[list[CacheKey], list[str], list[str]]:
    stale = {tuple(row) for item in invalidations for row in item["delete"]}
    bump = {key for item in invalidations for key in item["bump"]}
    tags = {key for item in invalidations for key in item.get("tags", ())}
    return [CacheKey(*row) for row in sorted(stale, key=str)], sorted(bump), sorted(tags)


class Outbox:
    """Writes, applies and replays outbox rows for one app (one engine, one region)."""

    def __init__(self, engine: Engine, region: Region, followers: tuple = (), patient: Region | None = None):
        self.engine, self.region = engine, region
        # A second try for a write's invalidation: the same keys over another pool, with a longer
        # timeout and a breaker of its own (the bulk region). A request-path timeout on a busy
        # machine is not an outage, and while the row waits for the retry loop other processes
        # serve what it voids.
        self.patient = patient
        # Each .prepare(db, invalidation) returns what runs after the row is applied, told whether
        # Redis took it: the edge caches' purges (catalog.edge_purge).
        self.followers = followers
        self._retrying = threading.Lock()
        self._settling = threading.Lock()  # orders "owe" against "settled": see _owe
        self._in_hook = threading.local()
        self.before_apply: list[Callable[[], None]] = []  # may raise CacheUnavailable (catalog.replica)

    # --- the write path ---------------------------------------------------------------------

    def prepare(self, db: Session, change: Change) -> Callable[[], None]:
        """Effect hook: the outbox row goes into the write's transaction; applying it, after commit."""
        invalidation = invalidation_for(db, self.region.keys, change)
        row = CacheOutbox(invalidations=invalidation)
        db.add(row)
        db.flush()
        row_id = row.id
        then = [follower.prepare(db, invalidation) for follower in self.followers]

        def committed() -> None:
            applied = self.apply_committed(row_id, invalidation)
            for callback in filter(None, then):
                callback(applied)

        return committed

    def apply_committed(self, row_id: int, invalidation: dict) -> bool:
        """Apply a committed write's row; False when Redis could not take it (the row stays)."""
        try:
            self._deliver(invalidation)
        except CacheUnavailable:
            log.warning("invalidation %s kept in the outbox: cache unavailable", row_id)
            self._owe()
            return False
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(CacheOutbox).where(CacheOutbox.id == row_id))
        except SQLAlchemyError:
            log.warning("applied invalidation %s stays in the outbox until a drain", row_id, exc_info=True)
        return True

    # --- replays ----------------------------------------------------------------------------

    def drain(self) -> int:
        """Apply and delete every pending row (through the breaker); returns how many. Raises
        ``CacheUnavailable`` if Redis cannot take them; rows stay then."""
        return self._drain(self._apply_through_region)

    def pending(self) -> int:
        with self.engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(CacheOutbox))

    def retry_in_background(self) -> None:
        """Start (once per process) a thread that drains every second until the outbox is empty."""
        if self._retrying.acquire(blocking=False):
            threading.Thread(target=self._retry_loop, name="shelf-outbox-retry", daemon=True).start()

    def on_redis_connect(self, connection: redis.connection.AbstractConnection) -> None:
        """redis-py connect hook: replay pending rows before this connection serves anything."""
        connection.on_connect()
        if getattr(self._in_hook, "active", False):
            return  # the replay's own connections
        self._in_hook.active = True
        try:
            self._drain(self._apply_direct)
        except CacheUnavailable as exc:
            raise redis.ConnectionError(f"pending invalidations could not be applied: {exc}") from exc
        except SQLAlchemyError:
            log.warning("outbox unreadable while connecting to Redis; going on", exc_info=True)
        finally:
            self._in_hook.active = False

    def _owe(self) -> None:
        """This process answered a write whose invalidation Redis has not taken: its reads bypass the
        cache (``Region.suspend_reads``) until the retry loop finds the outbox empty. Both steps hold
        ``_settling``, so a failure can never land between the loop's last look and its exit."""
        with self._settling:
            self.region.suspend_reads()
            self.retry_in_background()

    def _retry_loop(self) -> None:
        try:
            while True:
                time.sleep(RETRY_SECONDS)
                try:
                    self.drain()
                    if self._settled():
                        log.warning("outbox drained: cache invalidations caught up")
                        return
                except (CacheUnavailable, SQLAlchemyError):
                    continue
        except BaseException:
            self._retrying.release()
            raise

    def _settled(self) -> bool:
        """Nothing pending (from any process): reads resume and the loop ends, under ``_settling``."""
        with self._settling:
            if self.pending():
                return False
            self.region.resume_reads()
            self._retrying.release()
            return True

    def _drain(self, apply: Callable[[list[dict]], None]) -> int:
        done = 0
        while True:
            with self.engine.begin() as conn:
                rows = conn.execute(
                    select(CacheOutbox.id, CacheOutbox.invalidations)
                    .order_by(CacheOutbox.id)
                    .limit(DRAIN_BATCH)
                    .with_for_update(skip_locked=True)
                ).all()
                if not rows:
                    return done
                apply([row.invalidations for row in rows])
                conn.execute(delete(CacheOutbox).where(CacheOutbox.id.in_([row.id for row in rows])))
            done += len(rows)

    def _deliver(self, invalidation: dict) -> None:
        try:
            self._apply_through_region([invalidation])
        except CacheUnavailable:
            if self.patient is None:
                raise
            self._apply_through_region([invalidation], self.patient)

    def _apply_through_region(self, invalidations: list[dict], region: Region | None = None) -> None:
        for hook in self.before_apply:
            hook()
        (region or self.region).invalidate(*merge(invalidations))

    def _apply_direct(self, invalidations: list[dict]) -> None:
        for hook in self.before_apply:
            hook()
        self.region.invalidate_past_breaker(*merge(invalidations))
