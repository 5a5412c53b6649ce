"""Flask wiring of the cache layer: one Region per app, and the read helper views use.

The engine (leases, single flight, stale-while-revalidate, breaker) lives in
the framework-free ``cache`` package. Flask-Caching is registered over the
same Region (``api.flask_cache``), so its decorators get the same single
flight, stale-while-revalidate and breaker, and pickle nothing.
``SHELF_CACHE_ENABLED=false`` swaps in the null
backend: the very same code path with nothing stored, the baseline the
benchmarks compare against. With ``SHELF_CACHE_LOCAL_ENTRIES`` > 0 (the default)
the Redis backend is fronted by a near cache in each process
(``cache.backends.near``): a hot entry is then served without a round trip.
``REDIS_URL`` may name a Redis Cluster (``redis+cluster://host:port``, see
``cache.backends.cluster``); the near cache must then be off.

:func:`serve` turns a Region result into the HTTP response: the stored
bytes, their ETag (``If-None-Match`` answers 304 without PostgreSQL or
re-serializing), ``Cache-Control`` for shared caches, ``X-Cache`` and
``Server-Timing``. A cached 404 is re-rendered as a fresh problem body so
the request id in it is this request's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from flask import Flask, Response, current_app, request
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from cache.api import Backend
from cache.backends.cluster import backend_from_url
from cache.backends.near import NearCache
from cache.backends.null import NullBackend
from cache.backends.redis import RedisBackend
from cache.config import DEFAULT_TTLS, CacheConfig, ResourceTTL
from cache.entry import Payload
from cache.keys import CacheKey
from cache.metrics import Event, PrometheusMetrics
from cache.refresh import BackgroundRefresher
from cache.region import Region, Result, State

from . import edge_tags, flask_cache, metrics
from .config import Settings
from .db import fill_reads
from .errors import render as render_problem
from .http import send
from .representations import Rendered
from .schemas import CACHE_RESOURCES
from .services.errors import NotFound

DATABASE_DOWN = (OperationalError, InterfaceError, PoolTimeout)
"""Creator failures that may be answered with a stale entry (stale-if-error)."""

NOT_FOUND_ETAG = '"not-found"'


def not_found(detail: str) -> Payload:
    """A cached 404 keeps its detail ("product 7 not found"), so a hit says what the miss said."""
    return Payload(404, detail.encode(), NOT_FOUND_ETAG)


def payload(rendered: Rendered) -> Payload:
    return Payload(200, rendered.body, rendered.etag)


LOOKUP = "shelf.cache_lookup"
"""WSGI environ key: ``(key, lookup)``, the cache read ``api.fast_path`` made before handing the
request to Flask (lookup None when it could not read), so ``serve`` does not read it again."""

BULK_TIMEOUT_MS = 2000
"""Redis timeout of bulk work (warming): a pipeline of hundreds of fills may take longer than a read
may wait, and a slow one must not open the request path's circuit breaker."""

REFRESH_THREADS = 2
"""Background threads per process that recompute stale entries off the request path (each holds a
database connection while it works: ``Settings.db_pool_size`` counts one)."""

NEAR_MAX_AGE = 300
"""Seconds a near-cache slot is kept at most, the product entry's soft TTL: Redis's invalidation
pushes keep it exact, the age bounds what a lost push could cost."""


def region() -> Region:
    return current_app.extensions["shelf.region"]


def keys():
    return region().keys


def serve(
    key: CacheKey,
    build: Callable[[], Rendered | Payload],
    assemble: Callable[[bytes], Rendered] | None = None,
    shown: Callable[[bytes], Iterable[str]] | None = None,
) -> Response:
    """Answer a read from the cache; on a miss ``build()`` makes it, and its NotFound is cached as a 404.
    With ``assemble``, what is cached is not the body but what the body is made from at each read;
    ``shown`` names the edge tags (``api.edge_tags``) of the other entries an assembled body shows."""

    def creator() -> Payload:
        try:
            with fill_reads():
                built = build()
        except NotFound as exc:
            return not_found(str(exc))
        return built if isinstance(built, Payload) else payload(built)

    extension = current_app.extensions
    handed = request.environ.get(LOOKUP)
    lookup = handed[1] if handed is not None and handed[0] == key else None
    result = extension["shelf.region"].get_or_create(
        key, creator, allow_stale_on_error=DATABASE_DOWN, lookup=lookup
    )
    policy = extension["shelf.cache_headers"]
    headers = cache_headers(result, policy)
    entry = result.entry
    if policy.tag_header and entry.status == 200:
        extra = shown(entry.body) if shown is not None else ()
        headers[policy.tag_header] = edge_tags.header_value(key.entry, extra)
    if entry.status == 404:
        detail = entry.body.decode() or "not found"  # an entry cached before 404s kept their detail
        return render_problem(404, "Not Found", detail, headers=headers)
    rendered = Rendered(entry.body, entry.etag) if assemble is None else assemble(entry.body)
    return send(rendered, headers=headers)


@dataclass(frozen=True)
class HeaderPolicy:
    """What the cache headers of every read share, worked out once per app rather than per request."""

    enabled: bool
    cache_control: str
    tag_header: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> HeaderPolicy:
        cache_control = (
            f"public, max-age={settings.http_max_age}, "
            f"stale-while-revalidate={settings.http_stale_while_revalidate}"
        )
        return cls(settings.cache_enabled, cache_control, edge_tags.header_name(settings.edge_tag_header))


def cache_headers(result: Result, policy: HeaderPolicy) -> dict[str, str]:
    state = result.state if policy.enabled else State.BYPASS
    headers = {
        "X-Cache": state.value,
        "Server-Timing": f"cache;dur={result.cache_ms:.2f}, db;dur={result.compute_ms:.2f}",
    }
    if result.entry.status == 200:
        headers["Cache-Control"] = policy.cache_control
    if result.stale_if_error:
        headers["Cache-Status"] = "shelf; hit; detail=stale-if-error"
    return headers


def stats() -> dict:
    """Counters per resource (every worker process), the breaker, and invalidations still pending."""
    registry = metrics.collected()
    resources = {}
    for resource in CACHE_RESOURCES:
        counts = {
            event.value: int(
                registry.get_sample_value(f"shelf_cache_{event.value}_total", {"resource": resource}) or 0
            )
            for event in Event
        }
        served = counts["hits"] + counts["misses"] + counts["stale"] + counts["bypass"]
        counts["hit_ratio"] = round((counts["hits"] + counts["stale"]) / served, 4) if served else None
        resources[resource] = counts
    return {
        "enabled": current_app.config["SHELF"].cache_enabled,
        "breaker": region().breaker.state.name.lower(),
        "outbox_pending": current_app.extensions["shelf.outbox"].pending(),
        "resources": resources,
    }


def cache_config(settings: Settings) -> CacheConfig:
    ttls = dict(DEFAULT_TTLS)
    ttls.update({name: ResourceTTL(hard, soft) for name, (hard, soft) in settings.cache_ttls.items()})
    return CacheConfig(
        key_prefix=settings.cache_prefix,
        ttls=ttls,
        wait_budget_ms=settings.cache_wait_ms,
        redis_timeout_ms=settings.cache_redis_timeout_ms,
    )


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


def _bulk_region(settings: Settings, config: CacheConfig, metrics: PrometheusMetrics) -> Region:
    """The same keys and policy over its own connection pool, timeout and breaker (connects when used)."""
    if not settings.cache_enabled:
        return Region(NullBackend(), config, metrics)
    timeout_ms = max(BULK_TIMEOUT_MS, settings.cache_redis_timeout_ms)
    return Region(backend_from_url(settings.redis_url, timeout_ms), config, _CountsOnly(metrics))


class _CountsOnly:
    """The bulk region's events count with the rest; the breaker gauge stays the request path's."""

    def __init__(self, metrics: PrometheusMetrics):
        self.count = metrics.count

    def breaker_state(self, state: int) -> None:
        return None


def _refresher(app: Flask, settings: Settings) -> BackgroundRefresher | None:
    """Stale entries' recomputes, off the request path: each runs in an app context of its own,
    whose teardown closes the session its creator opened."""
    if not settings.cache_enabled or REFRESH_THREADS == 0:  # 0: a stale entry is recomputed in the request
        return None
    return BackgroundRefresher(REFRESH_THREADS, context=app.app_context)


def init_app(app: Flask, settings: Settings, registry: CollectorRegistry) -> Region:
    config = cache_config(settings)
    redis_backend = backend_from_url(settings.redis_url, settings.cache_redis_timeout_ms)
    client = redis_backend.client
    metrics = PrometheusMetrics(registry)
    backend = _backend(settings, redis_backend, metrics)
    built = Region(backend, config, metrics, refresher=_refresher(app, settings))
    app.extensions["shelf.region"] = built
    app.extensions["shelf.cache_headers"] = HeaderPolicy.from_settings(settings)
    app.extensions["shelf.bulk_region"] = _bulk_region(settings, config, metrics)
    app.extensions["shelf.cache_client"] = client
    app.extensions["shelf.redis_backend"] = redis_backend
    flask_cache.init_app(app)
    return built
