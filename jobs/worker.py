"""The rq worker class Shelf runs: ``rq worker --worker-class jobs.worker.Worker ...``.

rq forks a work horse for every job, and the horse imports the job's module before
running it. Our job modules import the core (SQLAlchemy, marshmallow, the cache), which takes
several times the work of a recompute, so a burst of reviews would drain at little more than one
job a second. Importing the job modules here, in the worker process, means every fork starts
with them loaded. Only modules are loaded before the fork: no runtime is built and no connection
opened (each horse builds its own, see ``jobs.context``), so nothing is shared across processes.

The worker and its scheduler also ride out an outage of the queue's Redis. rq retries
only its blocking dequeue; any other Redis call of the work loop (its state, heartbeats,
the suspension check, maintenance, the bookkeeping around a job) or of the scheduler
process ends the process, and under ``make run`` the API with it. Here each of those
calls logs the outage and is retried (or skipped, for bookkeeping the next round
redoes) with a backoff capped at ``RETRY_CAP_SECONDS``, so the worker is back within
about that long of Redis returning. A job whose end the worker could not record is left
in rq's started registry, which retries it like the job of a killed worker.
"""

from __future__ import annotations

import time

import redis
import rq
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT as DATE
from rq.defaults import DEFAULT_LOGGING_FORMAT as FORMAT
from rq.scheduler import RQScheduler

from jobs import aggregates, maintenance, warming  # noqa: F401 - loaded once, for every forked job

REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)
FIRST_RETRY_SECONDS = 0.25
RETRY_CAP_SECONDS = 2.0
"""Longest wait between two attempts to reach Redis: how late the worker may notice it is back."""


class Backoff:
    """Waits that double from ``FIRST_RETRY_SECONDS`` up to ``RETRY_CAP_SECONDS``, until reset."""

    def __init__(self):
        self.wait = FIRST_RETRY_SECONDS

    def next(self) -> float:
        wait, self.wait = self.wait, min(self.wait * 2, RETRY_CAP_SECONDS)
        return wait

    def reset(self) -> None:
        self.wait = FIRST_RETRY_SECONDS


class Scheduler(RQScheduler):
    """rq's scheduler (moves jobs queued "in N seconds" onto their queue), restarted after an outage."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._backoff = Backoff()

    def work(self) -> None:
        while True:
            try:
                return super().work()
            except REDIS_DOWN as exc:
                if self._stop_requested:
                    self.log.warning("Scheduler stopping with Redis unavailable (%s); its locks expire", exc)
                    return None
                wait = self._backoff.next()
                self.log.warning("Scheduler: Redis unavailable (%s); retrying in %.2f s", exc, wait)
                time.sleep(wait)

    def heartbeat(self) -> None:
        super().heartbeat()
        self._backoff.reset()


class Worker(rq.Worker):
    """rq's worker, with the job modules loaded before it forks, riding out Redis outages."""

    max_connection_wait_time = RETRY_CAP_SECONDS  # rq's own dequeue retries, capped at 60 s by default

    def bootstrap(self, *args, **kwargs) -> None:
        self._ride_out("starting", super().bootstrap, *args, **kwargs)

    def _start_scheduler(
        self, burst=False, logging_level="INFO", date_format=DATE, log_format=FORMAT
    ) -> None:
        """rq's, with our scheduler class, and waiting out Redis if it is down as the worker starts."""
        if burst:
            return super()._start_scheduler(burst, logging_level, date_format, log_format)
        self.scheduler = Scheduler(
            self.queues,
            connection=self.connection,
            logging_level=logging_level if logging_level is not None else self.log.level,
            date_format=date_format,
            log_format=log_format,
            serializer=self.serializer,
        )
        self._ride_out("starting the scheduler", self.scheduler.acquire_locks, auto_start=True)
        return None

    def check_for_suspension(self, burst: bool) -> None:
        self._ride_out("checking for suspension", super().check_for_suspension, burst)

    def run_maintenance_tasks(self) -> None:
        self._or_skip("cleaning registries", super().run_maintenance_tasks)

    def set_state(self, state, pipeline=None) -> None:
        self._or_skip("recording its state", super().set_state, state, pipeline)

    def heartbeat(self, timeout=None, pipeline=None) -> None:
        self._or_skip("sending a heartbeat", super().heartbeat, timeout, pipeline)

    def maintain_heartbeats(self, job, execution) -> None:
        self._or_skip(f"sending job {job.id}'s heartbeat", super().maintain_heartbeats, job, execution)

    def execute_job(self, job, queue) -> None:
        self._or_skip(
            f"recording job {job.id} (the registry retries it if unfinished)", super().execute_job, job, queue
        )

    def teardown(self) -> None:
        self._or_skip("stopping (its registration expires by itself)", super().teardown)

    def _ride_out(self, doing: str, call, *args, **kwargs):
        """``call`` once Redis answers, however long that takes (a stop request still stops it)."""
        backoff = Backoff()
        while True:
            try:
                return call(*args, **kwargs)
            except REDIS_DOWN as exc:
                wait = backoff.next()
                self.log.warning(
                    "Worker %s: Redis unavailable %s (%s); retrying in %.2f s", self.name, doing, exc, wait
                )
                time.sleep(wait)

    def _or_skip(self, doing: str, call, *args, **kwargs) -> None:
        try:
            call(*args, **kwargs)
        except REDIS_DOWN as exc:
            self.log.warning("Worker %s: Redis unavailable %s (%s); going on", self.name, doing, exc)
