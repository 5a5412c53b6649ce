"""Shelf's app factory. The WSGI entry point is ``api:create_app()``.

Clients (engine, Redis) are built here from one Settings object, never at
import time, so tests and jobs can build an app against their own servers.
"""

from __future__ import annotations

import os

from flask import Flask

from cache.backends.cluster import client_from_url
from catalog.config import Settings
from catalog.invalidation import Outbox
from catalog.popularity import ViewTracker
from catalog.readiness import WarmGate
from catalog.replica import ReplicaReads

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
from .guards import request_guards
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
    request_guards.init_app(app, settings.max_body_bytes)
    keep_alive.init_app(app, settings.max_body_bytes)
    registry = metrics.init_app(app)
    fast_path.init_app(app, settings)  # before the guard rails: it must sit inside their ProxyFix
    guards.init_app(app, settings)  # after metrics: it counts into the app's registry
    effects: list = []  # what every write's transaction records; run in this order after it commits
    db.init_app(app, settings, effects, registry)
    effects.append(background.init_app(app, settings, db.engine_of(app)))
    init_cache(app, settings, registry, effects)
    app.extensions["shelf.views"] = ViewTracker(
        app.extensions["shelf.queue"], settings.popularity_flush_seconds
    )
    app.extensions["shelf.warm_gate"] = WarmGate(
        app.extensions["shelf.queue"],
        settings.warm_on_start,
        settings.warm_ready_ratio,
        settings.warm_ready_seconds,
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


def init_cache(app: Flask, settings: Settings, registry, effects: list) -> None:
    region = caching.init_app(app, settings, registry)
    purger = edge.init_app(app, settings, db.engine_of(app))
    patient = app.extensions["shelf.bulk_region"]
    outbox = Outbox(db.engine_of(app), region, (purger,) if purger else (), patient)
    if purger is not None:
        purger.cache_pending = outbox.pending  # edge purges are replayed after Redis has caught up
    app.extensions["shelf.outbox"] = outbox
    effects.append(outbox)
    if settings.cache_enabled:
        app.extensions["shelf.redis_backend"].on_connect(outbox.on_redis_connect)
    if settings.cache_enabled and settings.replica_database_url:
        replica = replica_reads(app, settings, registry)
        app.extensions["shelf.replica"] = replica
        outbox.before_apply.append(replica.record_writes)


def replica_reads(app: Flask, settings: Settings, registry) -> ReplicaReads:
    replica_engine = db.make_engine(settings.replace(database_url=settings.replica_database_url))
    client = app.extensions["shelf.cache_client"]
    key = f"{settings.cache_prefix}:replica-watermark"
    breaker = app.extensions["shelf.region"].breaker
    return ReplicaReads(db.engine_of(app), replica_engine, client, key, registry, breaker)
