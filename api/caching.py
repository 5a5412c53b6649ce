"""Flask wiring of the cache layer: the read helper views use, and the headers every read carries.

The regions themselves are the runtime's (``catalog.caching``). Flask-Caching is registered over
the same Region (``api.flask_cache``), so its decorators get the same single flight,
stale-while-revalidate and breaker, and pickle nothing.

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
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from cache.entry import Payload
from cache.keys import CacheKey
from cache.metrics import Event
from cache.region import Region, Result, State
from catalog import edge_tags
from catalog.caching import not_found, payload
from catalog.config import Settings
from catalog.representations import Rendered
from catalog.runtime import Runtime
from catalog.services.errors import NotFound

from . import flask_cache, metrics
from .db import fill_reads
from .errors import render as render_problem
from .http import send
from .schemas import CACHE_RESOURCES

DATABASE_DOWN = (OperationalError, InterfaceError, PoolTimeout)
"""Creator failures that may be answered with a stale entry (stale-if-error)."""

LOOKUP = "shelf.cache_lookup"
"""WSGI environ key: ``(key, lookup)``, the cache read ``api.fast_path`` made before handing the
request to Flask (lookup None when it could not read), so ``serve`` does not read it again."""


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
    ``shown`` names the edge tags (``catalog.edge_tags``) of the other entries an assembled body shows."""

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


def init_app(app: Flask, runtime: Runtime) -> None:
    app.extensions["shelf.region"] = runtime.region
    app.extensions["shelf.cache_headers"] = HeaderPolicy.from_settings(runtime.settings)
    app.extensions["shelf.bulk_region"] = runtime.bulk_region
    app.extensions["shelf.cache_client"] = runtime.cache_client
    app.extensions["shelf.redis_backend"] = runtime.redis_backend
    flask_cache.init_app(app)
