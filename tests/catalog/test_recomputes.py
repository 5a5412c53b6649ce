"""Recompute requests survive an outage of the queue's Redis (catalog/recomputes.py).

A review posted while the queue is down is stored with its recompute request,
in the same transaction; once the queue is back the request is sent (each
target once) and the rating follows within seconds, not at the hourly full
recompute. The first test runs a real worker against a Redis it owns and stops;
the others cut the queue with a TCP proxy.
"""

from __future__ import annotations

import signal
import time
from urllib.parse import urlsplit

import pytest
import redis
import rq
from sqlalchemy import text

from catalog.models import RecomputeRequest
from jobs import context, maintenance
from tests.factories import make_category, make_product
from tests.jobs.test_jobs import queued, review, run_worker, start_worker, wait_for

VISIBLE_WITHIN_SECONDS = 5
"""What the README promises: a review's rating shows this soon after the queue is back."""


def recorded(engine) -> int:
    """Recompute requests recorded and not yet sent."""
    with engine.connect() as conn:
        return conn.scalar(text("SELECT count(*) FROM recompute_requests"))


def rating_count(engine, product_id: int) -> int:
    with engine.connect() as conn:
        return conn.scalar(
            text("SELECT review_count FROM product_rating_summaries WHERE product_id = :id"),
            {"id": product_id},
        )


@pytest.fixture
def queue_app(make_app, redis_proxy, redis_url):
    """An app that queues for real, its Redis behind ``redis_proxy`` (to cut it)."""
    url = urlsplit(redis_url)._replace(netloc=f"127.0.0.1:{redis_proxy.port}").geturl()
    app = make_app(redis_url=url, jobs_eager=False)
    context.use(app.extensions["shelf.runtime"])  # jobs run by an in-process worker use this app
    yield app
    context.use(None)


def test_requests_kept_through_an_outage_are_sent_once_per_target(queue_app, redis_proxy, engine, auth):
    client = queue_app.test_client()
    category = make_category(engine)
    first, second = make_product(engine, category), make_product(engine, category)
    redis_proxy.down()
    for product in (first, first, first, second):
        assert review(client, auth, product.id).status_code == 201
    assert recorded(engine) == 4  # one per write, each in its write's transaction
    redis_proxy.restore()
    wait_for(lambda: recorded(engine) == 0, VISIBLE_WITHIN_SECONDS)  # the process's own retry
    connection = queue_app.extensions["shelf.queue"]
    assert sorted(job.args[0] for job in queued(connection)) == sorted([first.id, second.id])
    run_worker(connection)
    assert (rating_count(engine, first.id), rating_count(engine, second.id)) == (3, 1)


def test_a_request_queued_after_commit_leaves_no_record(queue_app, engine, auth):
    product = make_product(engine, make_category(engine))
    assert review(queue_app.test_client(), auth, product.id).status_code == 201
    assert recorded(engine) == 0
    assert [job.func_name for job in queued(queue_app.extensions["shelf.queue"])] == [
        "jobs.aggregates.recompute_product"
    ]


def test_the_periodic_replay_sends_what_a_dead_process_left(queue_app, engine):
    """Requests a process recorded and died before sending: the job jobs.cron queues sends them."""
    product = make_product(engine, make_category(engine))
    with engine.begin() as conn:
        for _ in range(2):
            row = {"kind": "recompute_product", "target": f"product:{product.id}", "args": [product.id]}
            conn.execute(RecomputeRequest.__table__.insert().values(**row))
    with queue_app.app_context():
        assert maintenance.send_recomputes() == {"sent": 1}
    assert [job.args for job in queued(queue_app.extensions["shelf.queue"])] == [[product.id]]
    assert queue_app.extensions["shelf.recomputes"].pending() == 0


@pytest.mark.system
def test_a_review_during_a_queue_outage_is_rated_soon_after_the_queue_returns(
    make_app, settings, engine, auth, own_redis, tmp_path
):
    """End to end with a real worker: the queue's Redis stops (connections refused, not a proxy), a
    review is posted, Redis comes back; the kept request reaches the worker and the rating follows."""
    app = make_app(redis_url=own_redis.url(0), jobs_eager=False)
    client = app.test_client()
    product = make_product(engine, make_category(engine))
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        worker = start_worker(settings.replace(redis_url=own_redis.url(0)), burst=False, output=log)
    try:
        # rq's command line exits if Redis refuses it before the worker class runs: start it up first
        wait_for(lambda: len(rq.Worker.all(connection=redis.Redis.from_url(own_redis.url(0)))) == 1, 30)
        own_redis.stop()
        assert review(client, auth, product.id, 4).status_code == 201  # stored; its recompute is kept
        time.sleep(2)
        assert worker.poll() is None, log_path.read_text()  # the outage did not end the worker
        own_redis.ensure_running()
        wait_for(lambda: rating_count(engine, product.id) == 1, 3 * VISIBLE_WITHIN_SECONDS)
        assert client.get(f"/v1/products/{product.id}").get_json()["rating"] == {"average": 4.0, "count": 1}
        assert app.extensions["shelf.recomputes"].pending() == 0
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
