"""Everything a process of Shelf runs on, built once from Settings: ``build_runtime(settings)``.

The engine and its sessions, the cache regions, the write effects (the recompute requests and the
cache outbox, with the edge purges that follow it), the replica a cache fill may read, and the
queue's connection. The API wraps one in a Flask app (``api.create_app``); a job gets one of its
own (``jobs.context``); a test or a script builds one directly. Nothing is connected at build
time: pools connect on first use.

A write's effects run in the order they are listed in ``effects``: the recompute requests, then
the cache outbox. Every session of the runtime's sessionmaker records into that one list.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from cache.backends.redis import RedisBackend
from cache.region import Region

from . import queues
from .caching import RefreshContext, build_regions
from .config import Settings
from .db import count_statements, make_engine, make_sessionmaker
from .edge_purge import EdgePurger
from .invalidation import Outbox
from .recomputes import RecomputeRequests
from .replica import ReplicaReads


@dataclass
class Runtime:
    settings: Settings
    registry: CollectorRegistry
    engine: Engine
    sessions: sessionmaker[Session]
    queue: redis.Redis
    region: Region
    bulk_region: Region  # the same keys over its own pool, timeout and breaker (catalog.caching)
    redis_backend: RedisBackend  # the cache's Redis, under the request path's region
    outbox: Outbox
    recomputes: RecomputeRequests
    edge: EdgePurger | None  # None when no edge cache is configured
    replica: ReplicaReads | None  # None without a replica (or without the cache)

    @property
    def cache_client(self) -> redis.Redis:
        return self.redis_backend.client

    def dispose(self) -> None:
        """Close the database pools (the replica's too)."""
        self.engine.dispose()
        if self.replica is not None:
            self.replica.replica.dispose()


def build_runtime(
    settings: Settings,
    registry: CollectorRegistry | None = None,
    refresh_context: RefreshContext | None = None,
) -> Runtime:
    """``registry`` collects the runtime's metrics (a new one when None); ``refresh_context`` wraps
    each background refresh of a stale cache entry (``catalog.caching.build_regions``)."""
    registry = CollectorRegistry() if registry is None else registry
    engine = make_engine(settings)
    count_statements(engine, Counter("shelf_db_statements", "SQL statements sent", registry=registry))
    effects: list = []
    queue = queues.connect(settings.queue_url)
    regions = build_regions(settings, registry, refresh_context)
    recomputes = RecomputeRequests(engine, queue, settings)
    edge = _edge_purger(settings, engine)
    outbox = Outbox(engine, regions.region, (edge,) if edge else (), regions.bulk)
    if edge is not None:
        edge.cache_pending = outbox.pending  # edge purges are replayed after Redis has caught up
    effects += [recomputes, outbox]
    if settings.cache_enabled:
        regions.redis_backend.on_connect(outbox.on_redis_connect)
    replica = _replica(settings, engine, regions, registry)
    if replica is not None:
        outbox.before_apply.append(replica.record_writes)
    return Runtime(
        settings,
        registry,
        engine,
        make_sessionmaker(engine, effects),
        queue,
        regions.region,
        regions.bulk,
        regions.redis_backend,
        outbox,
        recomputes,
        edge,
        replica,
    )


def _edge_purger(settings: Settings, engine: Engine) -> EdgePurger | None:
    if not settings.edge_purge_urls:
        return None
    return EdgePurger(
        engine, settings.edge_purge_urls, settings.edge_purge_timeout_ms, settings.edge_purge_mode
    )


def _replica(settings: Settings, engine: Engine, regions, registry) -> ReplicaReads | None:
    if not (settings.cache_enabled and settings.replica_database_url):
        return None
    replica_engine = make_engine(settings.replace(database_url=settings.replica_database_url))
    key = f"{settings.cache_prefix}:replica-watermark"
    client = regions.redis_backend.client
    return ReplicaReads(engine, replica_engine, client, key, registry, regions.region.breaker)
