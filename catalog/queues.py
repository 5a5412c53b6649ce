"""Queues, their connection, and the policy every job is enqueued with.

Three queues by priority; workers take ``high`` first. Every job kind names
its timeout, result TTL, failure TTL and retry policy here, once. Job data is
JSON (rq's JSONSerializer), never pickled, which also keeps job arguments to
ids and plain values. The queue's Redis is configured apart from the cache's
(``SHELF_QUEUE_REDIS_URL``): rq does not run on Redis Cluster, the cache may.

Debounced enqueueing: a fixed "pending" key per target (``SET NX``) lets one
job wait per target; the job deletes its key when it starts, so a write
arriving while it runs schedules exactly one more. A burst of a thousand
reviews of one product runs one or two recomputes, not a thousand.

Joined enqueueing, for requests a client follows (warms): the pending key
holds the waiting job's id, and an identical request gets that job back
instead of queueing another.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

import redis
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from cache.backends.cluster import client_from_url

HIGH, DEFAULT, LOW = "high", "default", "low"
QUEUES = (HIGH, DEFAULT, LOW)
"""In the order workers take them."""

TIMEOUT_SECONDS = 2.0
"""Connect and reply timeout of the queue's connection: enqueueing waits out a busy server, not an outage."""

PENDING_PREFIX = "shelf-jobs:pending:"
"""On the queue's server, outside the cache's namespace: purging the cache must not forget pending
jobs. Fixed, like rq's own ``rq:`` keys (see ``catalog.config`` on the key scheme)."""

log = logging.getLogger("shelf.jobs")


@dataclass(frozen=True)
class Policy:
    queue: str
    timeout: int  # seconds a run may take before rq kills it
    result_ttl: int  # seconds a finished job (and its result) stays visible
    failure_ttl: int  # seconds a failed job stays in the failed registry
    retries: int = 3  # transient failures (database or Redis) are retried with backoff
    backoff: tuple[int, ...] = (1, 5, 15)

    def options(self) -> dict:
        return {
            "job_timeout": self.timeout,
            "result_ttl": self.result_ttl,
            "failure_ttl": self.failure_ttl,
            "retry": Retry(max=self.retries, interval=list(self.backoff)),
        }


POLICIES = {
    "recompute_product": Policy(HIGH, timeout=60, result_ttl=3600, failure_ttl=7 * 86400),
    "recompute_categories": Policy(DEFAULT, timeout=300, result_ttl=3600, failure_ttl=7 * 86400),
    "recompute_all": Policy(DEFAULT, timeout=1800, result_ttl=86400, failure_ttl=7 * 86400),
    "warm": Policy(LOW, timeout=1800, result_ttl=86400, failure_ttl=7 * 86400),
    "drain_outbox": Policy(HIGH, timeout=60, result_ttl=600, failure_ttl=86400),
    "send_recomputes": Policy(HIGH, timeout=60, result_ttl=600, failure_ttl=86400),
}


def connect(url: str) -> redis.Redis:
    """The queue's connection (a standalone server: ``catalog.config`` refuses a cluster here)."""
    return client_from_url(url, TIMEOUT_SECONDS)


def queue(name: str, connection: redis.Redis, *, eager: bool = False) -> Queue:
    """``eager`` runs jobs in the caller's process at enqueue time (tests, single-process tools)."""
    return Queue(name, connection=connection, serializer=JSONSerializer, is_async=not eager)


def enqueue(
    connection: redis.Redis, kind: str, func, *args, eager: bool = False, job_id=None, **kwargs
) -> Job:
    policy = POLICIES[kind]
    options = policy.options() | {"job_id": job_id, "meta": {"kind": kind}}
    return queue(policy.queue, connection, eager=eager).enqueue(func, *args, **options, **kwargs)


def enqueue_debounced(
    connection: redis.Redis, kind: str, target: str, func, *args, delay: int, eager: bool = False
) -> Job | None:
    """Enqueue ``func`` for ``target`` unless one is already waiting; run it ``delay`` seconds later."""
    policy = POLICIES[kind]
    pending_key = PENDING_PREFIX + target
    if not connection.set(pending_key, "1", nx=True, ex=delay + policy.timeout):
        return None
    options = policy.options() | {"meta": {"kind": kind, "pending_key": pending_key}}
    jobs = queue(policy.queue, connection, eager=eager)
    if delay and not eager:
        return jobs.enqueue_in(timedelta(seconds=delay), func, *args, **options)
    return jobs.enqueue(func, *args, **options)


WAITING = (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED)
"""States of a job that has not started: one a client may still join."""


def waiting_job(connection: redis.Redis, target: str) -> Job | None:
    """The job queued by :func:`enqueue_joinable` for ``target``, if it has not started yet."""
    job_id = connection.get(PENDING_PREFIX + target)
    if not job_id:
        return None
    try:
        job = Job.fetch(job_id.decode(), connection=connection, serializer=JSONSerializer)
    except NoSuchJobError:
        return None
    return job if job.get_status() in WAITING else None


def enqueue_joinable(
    connection: redis.Redis, kind: str, target: str, func, *, eager: bool = False, **kwargs
) -> Job:
    """Enqueue ``func(**kwargs)`` as the job :func:`waiting_job` finds for ``target`` until it starts
    (or return the one an identical request queued a moment ago)."""
    policy = POLICIES[kind]
    pending_key, job_id = PENDING_PREFIX + target, uuid.uuid4().hex
    if not connection.set(pending_key, job_id, nx=True, ex=policy.timeout):
        if (joined := waiting_job(connection, target)) is not None:
            return joined
        connection.set(pending_key, job_id, ex=policy.timeout)  # the mark names a job that started
    options = policy.options() | {"job_id": job_id, "meta": {"kind": kind, "pending_key": pending_key}}
    return queue(policy.queue, connection, eager=eager).enqueue(func, **options, kwargs=kwargs)


def waiting(connection: redis.Redis, kind: str) -> int:
    """Jobs waiting on ``kind``'s queue (all of one kind where a queue holds one, as ``low`` does)."""
    return queue(POLICIES[kind].queue, connection).count


def release_pending(connection: redis.Redis, job: Job | None) -> None:
    """Called by a debounced job as it starts: writes from now on schedule another run."""
    if job is not None and job.meta.get("pending_key"):
        connection.delete(job.meta["pending_key"])
