"""The cache regions Shelf runs on, built from Settings: the request path's, and a patient one.

The engine (leases, single flight, stale-while-revalidate, breaker) lives in the framework-free
``cache`` package; this module picks its backend and policy from Settings.
``SHELF_CACHE_ENABLED=false`` swaps in the null backend: the very same code path with nothing
stored, the baseline the benchmarks compare against. With ``SHELF_CACHE_LOCAL_ENTRIES`` > 0 (the
default) the Redis backend is fronted by a near cache in each process (``cache.backends.near``): a
hot entry is then served without a round trip. ``REDIS_URL`` may name a Redis Cluster
(``redis+cluster://host:port``, see ``cache.backends.cluster``); the near cache must then be off.

The bulk region holds the same keys and policy over its own connection pool, timeout and breaker:
warming's pipelines of hundreds of fills, and an invalidation's second try, may take longer than a
read may wait, and a slow one must not open the request path's breaker.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from cache.api import Backend
from cache.backends.cluster import backend_from_url
from cache.backends.near import NearCache
from cache.backends.null import NullBackend
from cache.backends.redis import RedisBackend
from cache.config import CacheConfig
from cache.entry import Payload
from cache.metrics import Event, PrometheusMetrics
from cache.refresh import BackgroundRefresher
from cache.region import Region

from . import resources
from .config import Settings
from .representations import Rendered

NOT_FOUND_ETAG = '"not-found"'

BULK_TIMEOUT_MS = 2000
"""Redis timeout of bulk work (warming): a pipeline of hundreds of fills may take longer than a read
may wait, and a slow one must not open the request path's circuit breaker."""

REFRESH_THREADS = 2
"""Background threads per process that recompute stale entries off the request path (each holds a
database connection while it works: ``Settings.db_pool_size`` counts one)."""

NEAR_MAX_AGE = 300
"""Seconds a near-cache slot is kept at most, the product entry's soft TTL: Redis's invalidation
pushes keep it exact, the age bounds what a lost push could cost."""

RefreshContext = Callable[[], AbstractContextManager[object]]


def not_found(detail: str) -> Payload:
    """A cached 404 keeps its detail ("product 7 not found"), so a hit says what the miss said."""
    return Payload(404, detail.encode(), NOT_FOUND_ETAG)


def payload(rendered: Rendered) -> Payload:
    return Payload(200, rendered.body, rendered.etag)


@dataclass(frozen=True)
class Regions:
    """The request path's region, the bulk region, and the Redis backend under the first."""

    region: Region
    bulk: Region
    redis_backend: RedisBackend


def cache_config(settings: Settings) -> CacheConfig:
    return CacheConfig(
        key_prefix=settings.cache_prefix,
        ttls=resources.ttls(settings.cache_ttls),
        wait_budget_ms=settings.cache_wait_ms,
        redis_timeout_ms=settings.cache_redis_timeout_ms,
    )


def build_regions(
    settings: Settings, registry: CollectorRegistry, refresh_context: RefreshContext | None = None
) -> Regions:
    """``refresh_context`` wraps each background refresh of a stale entry (the API's app context,
    whose teardown closes the session its creator opened)."""
    config = cache_config(settings)
    redis_backend = backend_from_url(settings.redis_url, settings.cache_redis_timeout_ms)
    metrics = PrometheusMetrics(registry)
    backend = _backend(settings, redis_backend, metrics)
    keys = resources.CatalogKeys(settings.cache_prefix)
    region = Region(backend, config, metrics, refresher=_refresher(settings, refresh_context), keys=keys)
    return Regions(region, _bulk_region(settings, config, metrics, keys), redis_backend)


def _backend(settings: Settings, redis_backend: RedisBackend, metrics: PrometheusMetrics) -> Backend:
    if not settings.cache_enabled:
        return NullBackend()
    if not settings.cache_local_entries:
        return redis_backend
    return NearCache(
        redis_backend,
        settings.cache_local_entries,
        NEAR_MAX_AGE,
        on_local_hit=lambda resource: metrics.count(Event.LOCAL_HITS, resource),
    )


def _bulk_region(
    settings: Settings, config: CacheConfig, metrics: PrometheusMetrics, keys: resources.CatalogKeys
) -> Region:
    """The same keys and policy over its own connection pool, timeout and breaker (connects when used)."""
    if not settings.cache_enabled:
        return Region(NullBackend(), config, metrics, keys=keys)
    timeout_ms = max(BULK_TIMEOUT_MS, settings.cache_redis_timeout_ms)
    return Region(backend_from_url(settings.redis_url, timeout_ms), config, _CountsOnly(metrics), keys=keys)


class _CountsOnly:
    """The bulk region's events count with the rest; the breaker gauge stays the request path's."""

    def __init__(self, metrics: PrometheusMetrics):
        self.count = metrics.count

    def breaker_state(self, state: int) -> None:
        return None


def _refresher(settings: Settings, context: RefreshContext | None) -> BackgroundRefresher | None:
    """Stale entries' recomputes, off the request path, each inside ``context()``."""
    if not settings.cache_enabled or REFRESH_THREADS == 0:  # 0: a stale entry is recomputed in the request
        return None
    if context is None:
        return BackgroundRefresher(REFRESH_THREADS)
    return BackgroundRefresher(REFRESH_THREADS, context=context)
