"""Shelf's app factory. The WSGI entry point is ``api:create_app()``.

The app is Flask over a runtime (``catalog.runtime``) built from one Settings object when the
app is created, never at import time, so tests can build apps against their own servers; jobs
build their own runtime and never an app.
"""

from __future__ import annotations

import os

from flask import Flask

from cache.backends.cluster import client_from_url
from catalog.config import Settings
from catalog.popularity import ViewTracker
from catalog.readiness import WarmGate
from catalog.runtime import Runtime, build_runtime

from . import (
    background,
    caching,
    cli,
    db,
    docs_page,
    edge,
    errors,
    fast_path,
    guards,
    keep_alive,
    local_servers,
    metrics,
    request_log,
)
from .application import Shelf
from .openapi import OPENAPI_CONFIG, Api
from .routes import admin, categories, jobs, ops, products, reviews

REDIS_TIMEOUT_SECONDS = 0.25


def create_app(settings: Settings | None = None) -> Flask:
    targets = None  # where DATABASE_URL / REDIS_URL came from, when read from the environment
    if settings is None:
        environ, targets = local_servers.with_local_servers(os.environ)
        settings = Settings.from_env(environ)
    app = Shelf(__name__)
    app.config["SHELF"] = settings
    app.extensions["shelf.targets"] = targets
    app.config.update(OPENAPI_CONFIG)
    request_log.init_app(app, settings.log_level)
    keep_alive.init_app(app, settings.max_body_bytes)
    registry = metrics.init_app(app)
    fast_path.init_app(app, settings)  # before the guards: it must sit inside their ProxyFix
    guards.init_app(app, settings)  # after metrics: the rate limiter counts into the app's registry
    runtime = build_runtime(settings, registry, refresh_context=app.app_context)
    init_runtime(app, runtime)
    app.extensions["shelf.views"] = ViewTracker(runtime.queue, settings.popularity_flush_seconds)
    app.extensions["shelf.warm_gate"] = WarmGate(
        runtime.queue, settings.warm_on_start, settings.warm_ready_ratio, settings.warm_ready_seconds
    )
    app.extensions["shelf.redis"] = client_from_url(settings.redis_url, REDIS_TIMEOUT_SECONDS)
    api = Api(app)
    for module in (products, reviews, categories, admin, jobs):
        api.register_blueprint(module.blp)
    app.register_blueprint(ops.blp)
    docs_page.init_app(app)
    errors.init_app(app)
    cli.init_app(app)
    return app


def init_runtime(app: Flask, runtime: Runtime) -> None:
    """The runtime's parts as the app's extensions, where views and hooks find them."""
    app.extensions["shelf.runtime"] = runtime
    app.extensions["shelf.engine"] = runtime.engine
    app.extensions["shelf.sessionmaker"] = runtime.sessions
    app.extensions["shelf.outbox"] = runtime.outbox
    if runtime.replica is not None:
        app.extensions["shelf.replica"] = runtime.replica
    db.init_app(app)
    background.init_app(app, runtime)
    caching.init_app(app, runtime)
    edge.init_app(app, runtime.edge)
