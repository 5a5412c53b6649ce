"""The app's side of background work: the queue, triggers for operators, job listings.

What writes enqueue (recomputes, kept through queue outages) is ``catalog.recomputes``.

Trigger arguments are validated here, before anything is queued: a bad
trigger is a 4xx, never a job that fails later.
"""

from __future__ import annotations

import contextlib
import hashlib

import orjson
import redis
from flask import Flask, current_app, has_app_context
from rq.job import Job
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog import queues, readiness
from catalog.config import Settings
from catalog.models import Category, Product
from catalog.runtime import Runtime
from catalog.services.errors import Busy, InvalidInput, NotFound
from jobs import aggregates as aggregate_jobs
from jobs import context as job_context
from jobs import warming as warm_jobs
from jobs.status import job_status


def connection() -> redis.Redis:
    return current_app.extensions["shelf.queue"]


def eager() -> bool:
    return current_app.config["SHELF"].jobs_eager


def trigger_warm_checks(db: Session, scope: str, category: str | None, ids: list[int] | None) -> None:
    """The catalog-side checks of a warm request: its category or ids must exist."""
    if scope == "category" and not db.scalar(select(Category.id).where(Category.slug == category)):
        raise InvalidInput(f"category {category!r} not found", field="category")
    if scope == "ids":
        known = set(db.scalars(select(Product.id).where(Product.id.in_(ids))))
        if missing := sorted(set(ids) - known):
            raise InvalidInput(f"unknown product ids: {missing[:10]}", field="ids")


WARM_RETRY_AFTER_SECONDS = 30
"""What a warm refused for a full queue asks the client to wait: about one warm of everything."""


def trigger_warm(
    db: Session, scope: str, limit: int | None, category: str | None, ids: list[int] | None
) -> Job:
    """Validate a warm request against the catalog, then queue it on ``low``.

    An identical request still waiting gets that job back rather than queueing another; a
    new one is refused (``Busy``) when ``Settings.warm_max_waiting`` warms already wait.
    """
    trigger_warm_checks(db, scope, category, ids)
    kwargs = {"scope": scope, "limit": limit, "category": category, "ids": ids}
    target = "warm:" + hashlib.sha256(orjson.dumps(kwargs | {"ids": sorted(set(ids or ()))})).hexdigest()[:32]
    if joined := queues.waiting_job(connection(), target):
        return joined
    if queues.waiting(connection(), "warm") >= current_app.config["SHELF"].warm_max_waiting:
        raise Busy("too many warm jobs are waiting; retry later", retry_after=WARM_RETRY_AFTER_SECONDS)
    return queues.enqueue_joinable(connection(), "warm", target, warm_jobs.warm, eager=eager(), **kwargs)


def trigger_recompute(db: Session, scope: str, product_id: int | None, category: str | None) -> Job:
    if scope == "product":
        if not db.get(Product, product_id):
            raise InvalidInput(f"product {product_id} not found", field="product_id")
        return queues.enqueue(
            connection(), "recompute_product", aggregate_jobs.recompute_product, product_id, eager=eager()
        )
    if scope == "category":
        category_id = db.scalar(select(Category.id).where(Category.slug == category))
        if category_id is None:
            raise InvalidInput(f"category {category!r} not found", field="category")
        return queues.enqueue(
            connection(),
            "recompute_categories",
            aggregate_jobs.recompute_categories,
            [category_id],
            eager=eager(),
        )
    return queues.enqueue(connection(), "recompute_all", aggregate_jobs.recompute_all, eager=eager())


def failed_jobs() -> list[dict]:
    found = []
    for name in queues.QUEUES:
        registry = queues.queue(name, connection()).failed_job_registry
        for job_id in registry.get_job_ids():
            with contextlib.suppress(NotFound):
                found.append(job_status(connection(), job_id))
    return sorted(found, key=lambda job: str(job["ended_at"]), reverse=True)


def requeue_failed(job_ids: list[str] | None) -> int:
    """Requeue the named failed jobs (all when ``None``); returns how many."""
    count = 0
    for name in queues.QUEUES:
        registry = queues.queue(name, connection()).failed_job_registry
        for job_id in registry.get_job_ids():
            if job_ids is None or job_id in job_ids:
                registry.requeue(job_id)
                count += 1
    return count


def warm_on_start(settings: Settings) -> Job | None:
    """Queue one warm of the most read list pages and products when the API starts (gunicorn's
    when_ready); /readyz says "warming" until it has covered enough (catalog.readiness)."""
    if not settings.warm_on_start:
        return None
    connection = queues.connect(settings.queue_url)
    readiness.restart(connection)
    return queues.enqueue_debounced(
        connection,
        "warm",
        "warm:startup",
        warm_jobs.warm_on_start,
        settings.warm_on_start_limit,
        delay=0,
    )


def init_app(app: Flask, runtime: Runtime) -> None:
    """The queue's connection and the recompute requests of writes, from the runtime; a job run
    inline (``SHELF_JOBS_EAGER``) gets the runtime of the app it runs in."""
    app.extensions["shelf.queue"] = runtime.queue
    app.extensions["shelf.recomputes"] = runtime.recomputes
    job_context.embed(_app_runtime)


def _app_runtime() -> Runtime | None:
    return current_app.extensions["shelf.runtime"] if has_app_context() else None
