"""Background jobs on a real queue: recomputes after writes, dedup, retries, abandoned jobs, warming.

The app here queues jobs for real (not eagerly), and an in-process rq worker
(``SimpleWorker``, burst mode) runs them against the test database and Redis;
one test kills a real ``rq worker`` process mid-job.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import replace
from pathlib import Path

import psutil
import pytest
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from api import background, create_app
from catalog import queues
from catalog.models import CacheOutbox, RecomputeRequest
from catalog.popularity import POPULARITY_KEY
from catalog.services import aggregates
from jobs import context, warming
from tests.factories import make_category, make_product, make_products

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def queue_app(settings, redis_client):
    app = create_app(settings.replace(jobs_eager=False))
    context.use(app.extensions["shelf.runtime"])
    yield app
    context.use(None)
    app.extensions["shelf.engine"].dispose()


@pytest.fixture
def client(queue_app):
    return queue_app.test_client()


@pytest.fixture
def queue_redis(queue_app):
    return queue_app.extensions["shelf.queue"]


@pytest.fixture
def no_backoff(monkeypatch):
    """Retries go straight back on the queue, so a burst worker runs them in the same test."""
    for kind, policy in list(queues.POLICIES.items()):
        monkeypatch.setitem(queues.POLICIES, kind, queues.Policy(**{**policy.__dict__, "backoff": (0,)}))


def run_worker(queue_redis) -> None:
    queue_list = [queues.queue(name, queue_redis) for name in queues.QUEUES]
    SimpleWorker(queue_list, connection=queue_redis, serializer=JSONSerializer).work(burst=True)


def queued(queue_redis) -> list[Job]:
    return [job for name in queues.QUEUES for job in queues.queue(name, queue_redis).get_jobs()]


def review(client, auth, product_id, rating=5):
    body = {"rating": rating, "title": "t", "author": "a"}
    return client.post(f"/v1/products/{product_id}/reviews", json=body, headers=auth)


def test_a_review_queues_a_recompute_and_the_read_follows(client, engine, auth, queue_redis):
    product = make_product(engine, make_category(engine))
    path = f"/v1/products/{product.id}"
    assert client.get(path).get_json()["rating"]["count"] == 0
    assert review(client, auth, product.id, 4).status_code == 201
    assert client.get(path).get_json()["rating"]["count"] == 0  # the request did not wait for it
    [job] = queued(queue_redis)
    assert (job.origin, job.func_name) == ("high", "jobs.aggregates.recompute_product")
    run_worker(queue_redis)
    assert client.get(path).get_json()["rating"] == {"average": 4.0, "count": 1}


def test_a_burst_of_reviews_runs_one_recompute(client, engine, auth, queue_redis):
    product = make_product(engine, make_category(engine))
    for _ in range(40):
        assert review(client, auth, product.id).status_code == 201
    assert len(queued(queue_redis)) == 1
    run_worker(queue_redis)
    assert client.get(f"/v1/products/{product.id}").get_json()["rating"]["count"] == 40
    assert review(client, auth, product.id).status_code == 201
    assert len(queued(queue_redis)) == 1  # the pending mark was released when the job started


def test_product_writes_queue_category_stats(client, engine, auth, queue_redis):
    category = make_category(engine)
    product = make_product(engine, category)
    client.patch(f"/v1/products/{product.id}", json={"price": "99.00"}, headers=auth)
    [job] = queued(queue_redis)
    assert job.func_name == "jobs.aggregates.recompute_categories" and job.origin == "default"
    run_worker(queue_redis)
    stats = client.get(f"/v1/categories/{category.slug}").get_json()["stats"]
    assert stats["max_price"] == "99.00"


def test_jobs_carry_their_policy_and_json_data(client, engine, auth, queue_redis):
    product = make_product(engine, make_category(engine))
    review(client, auth, product.id)
    [job] = queued(queue_redis)
    policy = queues.POLICIES["recompute_product"]
    assert (job.timeout, job.result_ttl, job.failure_ttl) == (
        policy.timeout,
        policy.result_ttl,
        policy.failure_ttl,
    )
    assert job.retries_left == policy.retries
    stored = zlib.decompress(queue_redis.hget(job.key, "data"))  # rq compresses job data
    assert json.loads(stored)[0] == "jobs.aggregates.recompute_product"  # JSON, not a pickle


def test_a_transient_failure_is_retried(client, engine, auth, queue_redis, monkeypatch, no_backoff):
    product = make_product(engine, make_category(engine))
    review(client, auth, product.id, 3)
    [job] = queued(queue_redis)
    original, calls = aggregates.recompute_product_ratings, []

    def flaky(db, ids=None):
        calls.append(ids)
        if len(calls) == 1:
            raise OperationalError("SELECT 1", {}, Exception("connection reset"))
        return original(db, ids)

    monkeypatch.setattr(aggregates, "recompute_product_ratings", flaky)
    run_worker(queue_redis)
    status = client.get(f"/v1/jobs/{job.id}").get_json()
    assert status["status"] == "finished" and status["retries"] == 1
    assert client.get(f"/v1/products/{product.id}").get_json()["rating"]["count"] == 1


def test_a_job_that_keeps_failing_lands_in_the_failed_registry(
    client, engine, auth, queue_redis, monkeypatch, no_backoff, runner
):
    product = make_product(engine, make_category(engine))
    review(client, auth, product.id)
    [job] = queued(queue_redis)

    def broken(db, ids=None):
        raise OperationalError("SELECT 1", {}, Exception("database is gone"))

    monkeypatch.setattr(aggregates, "recompute_product_ratings", broken)
    run_worker(queue_redis)
    status = client.get(f"/v1/jobs/{job.id}").get_json()
    assert status["status"] == "failed" and status["retries"] == 3
    assert "database is gone" in status["error"]
    queue_app = client.application
    listed = queue_app.test_cli_runner().invoke(args=["jobs", "failed"])
    assert job.id in listed.output and "1 failed jobs" in listed.output
    monkeypatch.undo()
    requeued = queue_app.test_cli_runner().invoke(args=["jobs", "requeue", "--all"])
    assert "requeued 1 jobs" in requeued.output
    run_worker(queue_redis)
    assert client.get(f"/v1/jobs/{job.id}").get_json()["status"] == "finished"


def test_recomputes_are_idempotent(queue_app, engine, auth, queue_redis):
    from jobs.aggregates import recompute_product

    product = make_product(engine, make_category(engine))
    client = queue_app.test_client()
    for rating in (1, 4, 4):
        review(client, auth, product.id, rating)

    def snapshot():
        with engine.connect() as conn:
            return conn.execute(
                text(
                    "SELECT review_count, average, histogram FROM product_rating_summaries"
                    " WHERE product_id = :p"
                ),
                {"p": product.id},
            ).one()

    first = (recompute_product(product.id), snapshot())
    second = (recompute_product(product.id), snapshot())
    assert first == second and first[1][0] == 3


@pytest.mark.system
def test_a_job_whose_worker_was_killed_is_retried(settings, engine, queue_app, queue_redis, no_backoff):
    """A real rq worker is killed mid-job (SIGKILL); cleanup finds the abandoned job and retries it."""
    product = make_product(engine, make_category(engine))
    job = queues.enqueue(queue_redis, "recompute_product", "jobs.aggregates.recompute_product", product.id)
    blocker = create_engine(settings.database_url)
    with blocker.connect() as lock:
        lock.execute(text("LOCK TABLE product_rating_summaries IN ACCESS EXCLUSIVE MODE"))
        worker = start_worker(settings)
        wait_for(
            lambda: (
                Job.fetch(job.id, connection=queue_redis, serializer=JSONSerializer).get_status() == "started"
            )
        )
        # rq's work horse runs in a session of its own (setsid): kill it too, as a lost machine would.
        horses = psutil.Process(worker.pid).children(recursive=True)
        os.killpg(worker.pid, signal.SIGKILL)
        for horse in horses:
            horse.kill()
        worker.wait(10)
        psutil.wait_procs(horses, timeout=10)
        lock.rollback()
    blocker.dispose()
    # The killed job's PostgreSQL backend runs its queued statement once the lock is free and only then
    # finds its client gone; let it end, or the next test's clean-up can deadlock with it.
    wait_for(lambda: busy_backends(engine) == 0)
    started = StartedJobRegistry(queues.HIGH, connection=queue_redis, serializer=JSONSerializer)
    started.cleanup(timestamp=time.time() + 3600)  # what any worker does once the execution expires
    retried = Job.fetch(job.id, connection=queue_redis, serializer=JSONSerializer)
    assert retried.get_status() == "queued"  # back on its queue, one retry used
    assert retried.retries_left == queues.POLICIES["recompute_product"].retries - 1
    run_worker(queue_redis)
    assert Job.fetch(job.id, connection=queue_redis, serializer=JSONSerializer).get_status() == "finished"


@pytest.mark.system
def test_a_worker_shuts_down_gracefully_on_sigterm(settings, engine, queue_app, queue_redis):
    """SIGTERM mid-job: the worker lets the running job finish (rq's warm shutdown), then exits 0."""
    product = make_product(engine, make_category(engine))
    job = queues.enqueue(queue_redis, "recompute_product", "jobs.aggregates.recompute_product", product.id)
    blocker = create_engine(settings.database_url)
    with blocker.connect() as lock:
        lock.execute(text("LOCK TABLE product_rating_summaries IN ACCESS EXCLUSIVE MODE"))
        worker = start_worker(settings, burst=False)
        wait_for(
            lambda: (
                Job.fetch(job.id, connection=queue_redis, serializer=JSONSerializer).get_status() == "started"
            )
        )
        worker.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert worker.poll() is None  # still finishing the job
        lock.rollback()
    blocker.dispose()
    assert worker.wait(20) == 0
    assert Job.fetch(job.id, connection=queue_redis, serializer=JSONSerializer).get_status() == "finished"


@pytest.mark.system
@pytest.mark.parametrize(("worker_class", "preloaded"), [("jobs.worker.Worker", True), ("rq.Worker", False)])
def test_the_worker_loads_the_job_modules_once_before_forking(settings, queue_redis, worker_class, preloaded):
    """Our worker class imports the app before forking; rq's own leaves every job to import it."""
    queue = Queue("low", connection=queue_redis, serializer=JSONSerializer)
    job = queue.enqueue("tests.job_probes.app_modules_were_loaded")
    start_worker(settings, worker_class=worker_class, queue_names=["low"]).wait(60)
    finished = Job.fetch(job.id, connection=queue_redis, serializer=JSONSerializer)
    assert finished.get_status() == "finished"
    assert finished.return_value() is preloaded


def start_worker(
    settings,
    burst: bool = True,
    worker_class: str = "jobs.worker.Worker",
    queue_names=queues.QUEUES,
    output=None,
) -> subprocess.Popen:
    """A real ``rq worker`` process over the test servers; ``output`` (a file) receives its log."""
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "SHELF_ENV": "test",
        "SHELF_LOG_LEVEL": "WARNING",
    }
    rq = Path(sys.executable).parent / "rq"
    argv = [str(rq), "worker", "--worker-class", worker_class, "--serializer", "json", "--path", "."]
    argv += ["--url", settings.queue_url, "--burst" if burst else "--with-scheduler"]
    return subprocess.Popen(  # noqa: S603 - our own worker, fixed arguments
        [*argv, *queue_names], cwd=ROOT, env=env, start_new_session=True, stdout=output, stderr=output
    )


def busy_backends(engine) -> int:
    """Other sessions of this database running a statement or holding a transaction open."""
    with engine.connect() as conn:
        return conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')"
            )
        )


def wait_for(condition, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# --- triggers and warming ---------------------------------------------------------------------


def test_warm_trigger_queues_a_job_that_fills_the_cache(client, engine, auth, queue_redis):
    products = make_products(engine, make_category(engine), 5)
    ids = [p.id for p in products]
    response = client.post("/v1/admin/cache/warm", json={"scope": "ids", "ids": ids}, headers=auth)
    assert response.status_code == 202
    location = response.headers["Location"]
    assert location == f"/v1/jobs/{response.get_json()['id']}"
    assert client.get(location).get_json()["status"] == "queued"
    run_worker(queue_redis)
    status = client.get(location).get_json()
    assert status["status"] == "finished" and status["kind"] == "warm"
    assert status["result"]["stored"] == 5
    assert status["progress"] == {"done": 5, "total": 5}
    for product_id in ids:
        assert client.get(f"/v1/products/{product_id}").headers["X-Cache"] == "HIT"


def test_warming_fills_each_products_first_review_page_as_a_read_would(
    client, make_app, engine, auth, queue_redis
):
    products = make_products(engine, make_category(engine), 3)
    for n in range(23):  # 23 reviews: a full first page of 20 and a next cursor
        review = {"rating": 1 + n % 5, "title": f"Review {n}", "author": "Ann"}
        assert (
            client.post(f"/v1/products/{products[0].id}/reviews", json=review, headers=auth).status_code
            == 201
        )
    ids = [p.id for p in products]
    response = client.post("/v1/admin/cache/warm", json={"scope": "ids", "ids": ids}, headers=auth)
    assert response.status_code == 202
    run_worker(queue_redis)
    uncached = make_app(cache_enabled=False).test_client()
    for product_id in ids:
        warmed = client.get(f"/v1/products/{product_id}/reviews")
        assert warmed.headers["X-Cache"] == "HIT"
        assert warmed.get_data() == uncached.get(f"/v1/products/{product_id}/reviews").get_data()
    cursor = client.get(f"/v1/products/{ids[0]}/reviews").get_json()["next_cursor"]
    assert len(client.get(f"/v1/products/{ids[0]}/reviews?cursor={cursor}").get_json()["items"]) == 3


def test_warming_a_category_fills_its_first_list_pages(client, engine, auth, queue_redis):
    category = make_category(engine)
    make_products(engine, category, 3)
    response = client.post(
        "/v1/admin/cache/warm", json={"scope": "category", "category": category.slug}, headers=auth
    )
    assert response.status_code == 202
    run_worker(queue_redis)
    assert client.get(response.headers["Location"]).get_json()["result"]["list_pages"] == 6
    for sort in ("name", "-price", "newest"):
        assert client.get(f"/v1/products?category={category.slug}&sort={sort}").headers["X-Cache"] == "HIT"


def test_list_pages_are_warmed_in_batches_each_stored_within_its_leases(queue_app, engine, monkeypatch):
    """Each page is a query; pages reserved all at once would outlive their leases and all be rejected."""
    categories = [make_category(engine) for _ in range(3)]
    for category in categories:
        make_products(engine, category, 2)
    region = queue_app.extensions["shelf.bulk_region"]
    # Six pages of 0.4 s take 2.4 s, longer than a 2 s lease; a batch of two takes 0.8 s, which
    # leaves a loaded machine 1.2 s of slack per batch.
    monkeypatch.setattr(region, "config", replace(region.config, lease_ttl_ms=2000))
    monkeypatch.setattr(warming, "PAGE_BATCH", 2)
    real_list, real_reserve = warming.product_service.list_products, region.reserve
    reserved = []

    def slow_list(*args, **kwargs):
        time.sleep(0.4)
        return real_list(*args, **kwargs)

    def counted_reserve(keys):
        reserved.append(len(keys))
        return real_reserve(keys)

    monkeypatch.setattr(warming.product_service, "list_products", slow_list)
    monkeypatch.setattr(region, "reserve", counted_reserve)
    queries = [query for category in categories for query in warming._first_page_queries(category.slug)[:2]]
    runtime = queue_app.extensions["shelf.runtime"]
    with context.session() as db:
        assert warming.warm_page_queries(db, region, runtime, queries) == len(queries)
    assert reserved == [2, 2, 2]


def test_warming_the_whole_catalog_fills_every_lists_first_pages(client, engine, auth, queue_redis):
    parent = make_category(engine)
    child = make_category(engine, parent=parent)
    make_products(engine, child, 2)
    response = client.post("/v1/admin/cache/warm", json={"scope": "all"}, headers=auth)
    run_worker(queue_redis)
    assert client.get(response.headers["Location"]).get_json()["result"]["list_pages"] == 3 * 6
    for query in ("sort=price", f"category={parent.slug}&sort=rating", f"category={child.slug}&sort=-price"):
        assert client.get(f"/v1/products?{query}").headers["X-Cache"] == "HIT"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scope": "everything"}, "scope"),
        ({"scope": "category"}, "category"),
        ({"scope": "category", "category": "no-such-category"}, "category"),
        ({"scope": "ids"}, "ids"),
        ({"scope": "ids", "ids": [987654]}, "ids"),
        ({"scope": "ids", "ids": ["1"]}, "ids.0"),
        ({"scope": "popular", "limit": 0}, "limit"),
    ],
)
def test_bad_triggers_are_rejected_before_anything_is_queued(client, auth, queue_redis, body, field):
    response = client.post("/v1/admin/cache/warm", json=body, headers=auth)
    assert response.status_code == 422
    assert field in [e["field"] for e in response.get_json()["errors"]]
    assert queued(queue_redis) == []


def test_recompute_trigger(client, engine, auth, queue_redis):
    category = make_category(engine)
    make_product(engine, category)
    for body in ({"scope": "all"}, {"scope": "category", "category": category.slug}):
        response = client.post("/v1/admin/aggregates/recompute", json=body, headers=auth)
        assert response.status_code == 202, response.get_json()
    bad = client.post("/v1/admin/aggregates/recompute", json={"scope": "product"}, headers=auth)
    assert bad.status_code == 422
    run_worker(queue_redis)
    assert client.get(f"/v1/categories/{category.slug}").get_json()["stats"]["product_count"] == 1


def test_triggers_need_a_token_and_unknown_jobs_are_404(client):
    assert client.post("/v1/admin/cache/warm", json={"scope": "all"}).status_code == 401
    assert client.post("/v1/admin/aggregates/recompute", json={"scope": "all"}).status_code == 401
    missing = client.get("/v1/jobs/not-a-job")
    assert missing.status_code == 404 and missing.mimetype == "application/problem+json"


def test_views_are_counted_in_process_and_feed_the_popular_warm(queue_app, client, engine, queue_redis):
    products = make_products(engine, make_category(engine), 3)
    for product, views in zip(products, (1, 5, 3), strict=True):
        for _ in range(views):
            client.get(f"/v1/products/{product.id}")
    # Nothing written per request. (Only these products: apps of earlier tests flush their own.)
    assert all(queue_redis.zscore(POPULARITY_KEY, p.id) is None for p in products)
    assert queue_app.extensions["shelf.views"].flush() == 3
    assert queue_redis.zscore(POPULARITY_KEY, products[1].id) == 5
    queue_app.extensions["shelf.region"].purge(None)
    with queue_app.app_context():
        from jobs.warming import warm

        summary = warm("popular", limit=2)
    assert summary["products"] == 2 and summary["stored"] == 2
    assert summary["note"] == "2 most viewed, then 0 most reviewed"
    assert client.get(f"/v1/products/{products[1].id}").headers["X-Cache"] == "HIT"
    assert client.get(f"/v1/products/{products[0].id}").headers["X-Cache"] == "MISS"


def test_a_popular_warm_tops_few_views_up_with_the_most_reviewed_and_says_so(
    queue_app, client, engine, auth, queue_redis
):
    products = make_products(engine, make_category(engine), 4)
    for _ in range(2):
        client.get(f"/v1/products/{products[3].id}")
    assert queue_app.extensions["shelf.views"].flush() == 1
    review = {"rating": 4, "title": "t", "author": "a"}
    assert client.post(f"/v1/products/{products[1].id}/reviews", json=review, headers=auth).status_code == 201
    queue_app.extensions["shelf.region"].purge(None)
    with queue_app.app_context():
        from jobs.warming import warm

        summary = warm("popular", limit=3)
        everything = warm("popular", limit=50)
    assert summary["products"] == 3 and summary["stored"] == 3
    assert summary["note"] == "1 most viewed, then 2 most reviewed"
    cached = [client.get(f"/v1/products/{p.id}").headers["X-Cache"] for p in products]
    assert cached[3] == cached[1] == "HIT"  # the viewed one, then the reviewed one
    assert everything["products"] == everything["stored"] == 4
    assert (
        everything["note"]
        == "1 most viewed, then 3 most reviewed; the catalog has no more than 4 active products"
    )


def test_warm_on_start_queues_once(settings, queue_app, queue_redis):
    started = settings.replace(warm_on_start=True)
    assert background.warm_on_start(started) is not None
    assert background.warm_on_start(started) is None  # a second worker starting: already queued
    assert background.warm_on_start(settings) is None  # disabled
    assert len(queued(queue_redis)) == 1


def test_warming_waits_out_a_slow_redis_that_requests_do_not(proxied, redis_proxy, engine):
    """Bulk fills get their own timeout and breaker: a Redis too slow for a read still takes a warm,
    and the warm's waiting never opens the breaker that requests use."""
    products = make_products(engine, make_category(engine), 3)
    redis_proxy.delay = 0.3  # past the requests' 100 ms timeout, well within the bulk 2 s
    with proxied.app_context():
        result = warming.warm("ids", ids=[p.id for p in products], progress=lambda done, total: None)
    assert result["stored"] == 3
    assert proxied.extensions["shelf.region"].breaker.state.name == "CLOSED"
    assert proxied.test_client().get(f"/v1/products/{products[0].id}").headers["X-Cache"] == "BYPASS"
    redis_proxy.delay = 0.0
    client = proxied.test_client()
    assert [client.get(f"/v1/products/{p.id}").headers["X-Cache"] for p in products] == ["HIT"] * 3


def test_cli_warm_runs_here_with_a_progress_bar(queue_app, engine):
    products = make_products(engine, make_category(engine), 4)
    result = queue_app.test_cli_runner().invoke(args=["cache", "warm", "--scope", "all"])
    assert result.exit_code == 0, result.output
    assert "stored 4 of 4 products" in result.output
    client = queue_app.test_client()
    states = [client.get(f"/v1/products/{p.id}").headers.get("X-Cache") for p in products]
    assert states == ["HIT"] * 4
    bad = queue_app.test_cli_runner().invoke(
        args=["cache", "warm", "--scope", "category", "--category", "nope"]
    )
    assert bad.exit_code != 0 and "not found" in bad.output


def test_periodic_jobs_are_queued_as_json_and_run(queue_app, queue_redis):
    from jobs import cron

    entries, next_due = cron.schedule(), {}
    assert cron.tick(queue_redis, entries, next_due, now=100.0) == [
        "recompute_all",
        "drain_outbox",
        "send_recomputes",
    ]
    assert cron.tick(queue_redis, entries, next_due, now=101.0) == []  # not due yet
    assert cron.tick(queue_redis, entries, next_due, now=111.0) == []  # due, but one still waits
    jobs = queued(queue_redis)
    assert sorted(job.func_name for job in jobs) == [
        "jobs.aggregates.recompute_all",
        "jobs.maintenance.drain_outbox",
        "jobs.maintenance.send_recomputes",
    ]
    run_worker(queue_redis)  # a JSON worker reads them: nothing pickled
    assert all(
        Job.fetch(job.id, connection=queue_redis, serializer=JSONSerializer).is_finished for job in jobs
    )
    assert cron.tick(queue_redis, entries, next_due, now=122.0) == ["drain_outbox", "send_recomputes"]


def test_periodic_jobs_that_work_off_rows_wait_for_rows(queue_redis, engine, settings):
    """An idle catalog queues no drain or replay every ten seconds (each a job and its log lines)."""
    from jobs import cron

    waiting = cron.rows_waiting(engine)
    entries, next_due = cron.schedule(), {}
    assert cron.tick(queue_redis, entries, next_due, now=100.0, waiting=waiting) == ["recompute_all"]
    with engine.begin() as conn:
        conn.execute(RecomputeRequest.__table__.insert().values(kind="recompute_all", target="t", args=[]))
    assert cron.tick(queue_redis, entries, next_due, now=111.0, waiting=waiting) == ["send_recomputes"]
    unreachable = create_engine(settings.database_url.rsplit("/", 1)[0] + "/no_such_database")
    assert cron.rows_waiting(unreachable)((CacheOutbox,))  # cannot say: queue it, the job finds out
    unreachable.dispose()


def test_identical_warm_requests_share_the_waiting_job(client, engine, auth, queue_redis):
    products = make_products(engine, make_category(engine), 3)
    ids = [p.id for p in products]
    burst = [client.post("/v1/admin/cache/warm", json={"scope": "all"}, headers=auth) for _ in range(5)]
    assert {r.status_code for r in burst} == {202}
    assert len({r.headers["Location"] for r in burst}) == 1
    same_ids = [
        client.post("/v1/admin/cache/warm", json={"scope": "ids", "ids": order}, headers=auth)
        for order in (ids, ids[::-1])
    ]
    assert same_ids[0].headers["Location"] == same_ids[1].headers["Location"] != burst[0].headers["Location"]
    assert len(queued(queue_redis)) == 2
    run_worker(queue_redis)
    again = client.post("/v1/admin/cache/warm", json={"scope": "all"}, headers=auth)
    assert (
        again.status_code == 202 and again.headers["Location"] != burst[0].headers["Location"]
    )  # the first ran


def test_warm_requests_past_the_bound_are_503_with_retry_after(settings, engine, auth, redis_client):
    app = create_app(settings.replace(jobs_eager=False, warm_max_waiting=2))
    client = app.test_client()
    products = make_products(engine, make_category(engine), 3)
    for product in products[:2]:
        assert (
            client.post(
                "/v1/admin/cache/warm", json={"scope": "ids", "ids": [product.id]}, headers=auth
            ).status_code
            == 202
        )
    refused = client.post(
        "/v1/admin/cache/warm", json={"scope": "ids", "ids": [products[2].id]}, headers=auth
    )
    assert refused.status_code == 503 and refused.mimetype == "application/problem+json"
    assert int(refused.headers["Retry-After"]) > 0
    joined = client.post("/v1/admin/cache/warm", json={"scope": "ids", "ids": [products[0].id]}, headers=auth)
    assert joined.status_code == 202  # a request identical to a waiting one still gets that job
    assert len(queued(app.extensions["shelf.queue"])) == 2
    app.extensions["shelf.engine"].dispose()


def test_periodic_jobs_the_queue_could_not_take_are_retried_soon(queue_app, queue_redis, unused_port):
    from jobs import cron

    entries, next_due = cron.schedule(), {}
    down = queues.connect(f"redis://127.0.0.1:{unused_port}/0")
    assert cron.tick(down, entries, next_due, now=100.0) == []  # logged, and the loop goes on
    # Ten seconds on, both are tried again: the hourly recompute does not wait out its hour.
    assert cron.tick(queue_redis, entries, next_due, now=110.0) == [
        "recompute_all",
        "drain_outbox",
        "send_recomputes",
    ]


def test_cli_recompute_follows_its_job_until_the_worker_has_run_it(queue_app, engine, queue_redis):
    """Long CLI work shows progress: a queued recompute is followed (state, time) until it ends."""
    make_products(engine, make_category(engine), 3)
    outcome = {}
    cli = threading.Thread(
        target=lambda: outcome.update(
            result=queue_app.test_cli_runner().invoke(args=["aggregates", "recompute"])
        )
    )
    cli.start()
    deadline = time.monotonic() + 10
    while not queued(queue_redis) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the CLI shows the job waiting first
    run_worker(queue_redis)
    cli.join(30)
    result = outcome["result"]
    assert result.exit_code == 0, result.output
    assert "recompute_all: queued" in result.output and "recompute_all: finished" in result.output
    assert "finished: {'products_changed'" in result.output
    queued_only = queue_app.test_cli_runner().invoke(args=["aggregates", "recompute", "--no-wait"])
    assert queued_only.exit_code == 0 and "follow it at /v1/jobs/" in queued_only.output
