"""Job status for clients: an rq job as the plain dict ``GET /v1/jobs/{id}`` shows."""

from __future__ import annotations

import re

import redis
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.serializers import JSONSerializer

from catalog.queues import POLICIES
from catalog.services.errors import NotFound

JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def job_status(connection: redis.Redis, job_id: str) -> dict:
    if not JOB_ID.match(job_id):
        raise NotFound(f"job {job_id!r} not found")
    try:
        job = Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
    except NoSuchJobError:
        raise NotFound(f"job {job_id!r} not found") from None
    return describe(job)


def describe(job: Job) -> dict:
    kind = job.meta.get("kind") or job.func_name.rsplit(".", 1)[-1]
    policy = POLICIES.get(kind)
    used = policy.retries - job.retries_left if policy and job.retries_left is not None else 0
    result = job.return_value() if job.is_finished else None
    latest = job.latest_result() if job.is_failed else None
    return {
        "id": job.id,
        "kind": kind,
        "status": job.get_status().value,
        "enqueued_at": job.enqueued_at,
        "started_at": job.started_at,
        "ended_at": job.ended_at,
        "progress": job.meta.get("progress"),
        "result": result if isinstance(result, dict) else None,
        "error": _last_line(latest.exc_string) if latest else None,
        "retries": used,
    }


EXCEPTION_LINE = re.compile(r"^[\w.]*(Error|Exception|Exit|Interrupt|Timeout)\b.*")


def _last_line(text: str | None) -> str | None:
    """The traceback's exception line (not a library's trailing hint), shortened."""
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    exception_lines = [line for line in lines if EXCEPTION_LINE.match(line)]
    chosen = exception_lines[-1] if exception_lines else (lines[-1] if lines else None)
    return chosen[:500] if chosen else None
