"""Housekeeping jobs."""

from __future__ import annotations

from rq import get_current_job

from catalog.queues import release_pending

from . import context


def drain_outbox() -> dict:
    """Apply cache invalidations still in the outbox (left by a crashed process or a Redis outage)."""
    job = get_current_job()
    if job is not None:
        release_pending(job.connection, job)
    runtime = context.runtime()
    applied = runtime.outbox.drain()
    edge = runtime.edge  # edge purges not acknowledged yet (catalog.edge_purge)
    return {"applied": applied, "edge_purged": edge.drain() if edge is not None else 0}


def send_recomputes() -> dict:
    """Queue the recomputes that writes recorded but could not queue (the queue was down, or the
    process died before it could)."""
    job = get_current_job()
    if job is not None:
        release_pending(job.connection, job)
    return {"sent": context.runtime().recomputes.replay()}
