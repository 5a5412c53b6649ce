"""Benchmarks of the background work: warming speed and how soon a review shows in the rating.

    python -m loadtest.jobs_bench --warm-products 10000 --reviews 60

With DATABASE_URL / REDIS_URL unset it runs on embedded servers (``loadtest.embedded``): database
``shelf_bench``, Redis db 3. Set, they name the servers to use (``.../shelf_bench``, ``.../3``, say).

* **warm**: ``warm("popular", limit=N)`` run in-process against an empty cache,
  repeated (``--warm-runs``); the median time and products stored per run.
* **staleness**: the API (gunicorn, as the run command starts it) and an rq
  worker run as separate processes; for random products a review is posted and
  the product is read every 20 ms until its rating count moves. The delay is
  measured from the POST's 201 to the first read that shows it; it includes the
  recompute debounce (``catalog.config.RECOMPUTE_DEBOUNCE_SECONDS``, 2 s).
* **cold start**: Zipf-popular reads (the load test's distribution) build up
  view counts for ``--popularity-seconds``; then the cache is purged and the API
  restarted with warm-on-start, and the same reads start the moment it answers.
  The product hit ratio of every 1-second window, from ``/metrics``, for
  ``--cold-seconds``.
* **cold start, mixed** (``--benches cold-start-mixed``): the same with mixed reads
  (product detail, first list pages of every category and sort, Zipf-popular; the
  category tree), the hit ratio over every resource, and each second whether
  ``/readyz`` answered 200: the seconds to ready, and how soon after it the hit
  ratio reached 95%. The readers wait for ``/readyz``, as behind a balancer that checks
  it (the compose scale-out profile's HAProxy does), then read for ``--cold-seconds``;
  the samples start when the server answers.

Seeds the catalog first when the database is empty (``--catalog-products``, ``--catalog-reviews``: the
load test's catalog). Prints a JSON summary and writes it under ``loadtest/results/``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from api import create_app
from catalog import popularity, queues
from catalog.config import Settings
from jobs import context
from loadtest import bench_catalog, embedded
from loadtest.workload import SORTS, Zipf

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "loadtest" / "results"
TOKEN = os.environ.get("SHELF_BENCH_TOKEN", "dev-token")


def bench_warm(settings: Settings, products: int, runs: int) -> dict:
    app = create_app(settings)
    context.use(app.extensions["shelf.runtime"])
    from jobs.warming import warm

    timings, stored = [], []
    with app.app_context():
        for _ in range(runs):
            app.extensions["shelf.region"].purge("product")
            started = time.perf_counter()
            summary = warm("popular", limit=products)
            timings.append(time.perf_counter() - started)
            stored.append(summary["stored"])
    return {
        "products": products,
        "runs": runs,
        "median_s": round(statistics.median(timings), 3),
        "all_s": [round(t, 3) for t in timings],
        "stored": stored,
    }


def bench_staleness(settings: Settings, reviews: int, max_id: int) -> dict:
    with _stack(settings, warm_on_start=False) as base:
        delays = [_one_review_delay(base, random.randint(1, max_id)) for _ in range(reviews)]
    ordered = sorted(d for d in delays if d is not None)
    return {
        "reviews": reviews,
        "measured": len(ordered),
        "p50_s": round(statistics.median(ordered), 3),
        "p99_s": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3),
        "max_s": round(ordered[-1], 3),
        "debounce_s": settings.recompute_debounce_seconds,
    }


def bench_cold_start(settings: Settings, args, ids: list[int]) -> dict:
    zipf = Zipf(ids, args.zipf, args.seed)

    def draw(rng: random.Random) -> str:
        return f"/v1/products/{zipf.draw(rng)}"

    _forget_popularity(settings)
    with _stack(settings, warm_on_start=False) as base:
        _read_load(base, draw, args.popularity_seconds, threads=args.threads)
        time.sleep(settings.popularity_flush_seconds + 1)  # the last view counts reach Redis
    app = create_app(settings)
    app.extensions["shelf.region"].purge(None)
    with _stack(settings, warm_on_start=True) as base:
        series = _read_load(base, draw, args.cold_seconds, threads=args.threads, sample=True)
    reached = next((window["second"] for window in series if (window["hit_ratio"] or 0) >= 0.95), None)
    return {
        "warm_on_start_limit": settings.warm_on_start_limit,
        "zipf_exponent": args.zipf,
        "top_share": round(zipf.share_of_top(settings.warm_on_start_limit), 3),
        "first_second_at_95pct": reached,
        "series": series,
    }


def bench_cold_start_mixed(settings: Settings, args, ids: list[int], slugs: list[str]) -> dict:
    """The cold start under mixed reads, timed from the moment the new server answers: per second,
    the hit ratio over every cached resource and whether ``/readyz`` was 200."""
    draw = mixed_reads(ids, slugs, args.zipf, args.seed)
    _forget_popularity(settings)
    with _stack(settings, warm_on_start=False) as base:
        # Other random streams than the measured phase's: the same popularity, not the same requests,
        # or the restart would replay exactly the reads the warm was ranked by.
        _read_load(base, draw, args.popularity_seconds, threads=args.threads, streams="popularity")
        time.sleep(settings.popularity_flush_seconds + 1)  # the last read counts reach Redis
    app = create_app(settings)
    app.extensions["shelf.region"].purge(None)
    with _stack(settings, warm_on_start=True) as base:
        series = _read_load(
            base, draw, args.cold_seconds, args.threads, sample=True, resource=None, hold_until_ready=True
        )
        events = _events_by_resource(base)
    ready = next((window["second"] for window in series if window["ready"]), None)
    after = [window for window in series if ready is not None and window["second"] > ready]
    reached = next((window["second"] - ready for window in after if (window["hit_ratio"] or 0) >= 0.95), None)
    return {
        "warm_on_start_limit": settings.warm_on_start_limit,
        "ready_ratio": settings.warm_ready_ratio,
        "zipf_exponent": args.zipf,
        "seconds_to_ready": ready,
        "seconds_after_ready_to_95pct": reached,
        "hit_ratio_10s_after_ready": next((w["hit_ratio"] for w in after if w["second"] == ready + 10), None),
        "events_by_resource": events,  # the whole run, before ready too: where the misses were
        "series": series,
    }


def _forget_popularity(settings: Settings) -> None:
    """The counts start from this run's reads, as after a deploy, not from earlier runs' (which, with
    the same random streams, would count every read several times)."""
    queues.connect(settings.queue_url).delete(popularity.POPULARITY_KEY, popularity.PAGES_KEY)


def mixed_reads(ids: list[int], slugs: list[str], exponent: float, seed: int):
    """Reads as the mixed workload's readers make them: product detail (Zipf-popular), first list
    pages of a category in one of the sorts (Zipf-popular pages), the category tree."""
    products = Zipf(ids, exponent, seed)
    pages = [f"/v1/products?category={slug}&sort={sort}" for slug in slugs for sort in SORTS]
    page_ranks = Zipf(list(range(len(pages))), exponent, seed)

    def draw(rng: random.Random) -> str:
        roll = rng.random()
        if roll < 0.6:
            return f"/v1/products/{products.draw(rng)}"
        if roll < 0.95:
            return pages[page_ranks.draw(rng)]
        return "/v1/categories"

    return draw


@contextmanager
def _stack(settings: Settings, warm_on_start: bool):
    """gunicorn + an rq worker, as the run command starts them; yields the API's base URL.

    The queues (and their scheduled and deferred jobs) are emptied first: jobs the load test's writes
    left behind (it runs no worker) would otherwise stand in front of the ones measured here.
    """
    _empty_queues(settings)
    port = _free_port()
    env = {
        **os.environ,
        "SHELF_PORT": str(port),
        "SHELF_WARM_ON_START": str(warm_on_start).lower(),
        "SHELF_LOG_LEVEL": "WARNING",
        "SHELF_RATE_LIMITS_ENABLED": "false",  # all load comes from one address
    }
    bin_dir = Path(sys.executable).parent
    worker = subprocess.Popen(  # noqa: S603 - our own processes, fixed arguments
        [str(bin_dir / "rq"), "worker", "--worker-class", "jobs.worker.Worker", "--with-scheduler",
         "--serializer", "json", "--path", ".",
         "--url", settings.queue_url, "-q", "high", "default", "low"],
        cwd=ROOT, env=env, start_new_session=True,
    )  # fmt: skip
    server = subprocess.Popen(  # noqa: S603
        [str(bin_dir / "gunicorn"), "-c", "gunicorn.conf.py", "api:create_app()"],
        cwd=ROOT, env=env, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base)
        yield base
    finally:
        for process in (server, worker):
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:  # a worker finishes its job first: a long warm, say
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _empty_queues(settings: Settings) -> None:
    connection = queues.connect(settings.queue_url)
    for name in queues.QUEUES:
        queue = queues.queue(name, connection)
        queue.empty()
        # Debounced jobs wait in the scheduled registry; a new worker's scheduler would queue them all.
        for registry in (queue.scheduled_job_registry, queue.deferred_job_registry):
            for job_id in registry.get_job_ids():
                registry.remove(job_id, delete_job=True)
    pending = list(connection.scan_iter(match=queues.PENDING_PREFIX + "*"))
    if pending:
        connection.delete(*pending)


def _read_load(
    base: str,
    draw,
    seconds: float,
    threads: int,
    sample: bool = False,
    resource: str | None = "product",
    streams: str = "cold",
    hold_until_ready: bool = False,
) -> list[dict]:
    """Reads of ``draw(rng)`` paths from keep-alive clients, each seeded from ``streams`` and its
    index; if ``sample``, per second: the hit ratio (of ``resource``, or of every resource when None)
    and whether ``/readyz`` answered 200. With ``hold_until_ready`` the readers wait for ``/readyz``,
    as behind a balancer that checks it, and read for ``seconds`` from then; the samples start at once."""
    started, host, port = time.monotonic(), *base.removeprefix("http://").split(":")
    go, window = threading.Event(), {"stop": started + seconds}
    if not hold_until_ready:
        go.set()

    def reader(index: int) -> None:
        rng = random.Random(f"{streams}:{index}")
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        go.wait()
        while time.monotonic() < window["stop"]:
            connection.request("GET", draw(rng))
            connection.getresponse().read()

    workers = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    series, previous, second = [], _cache_counts(base, resource), 0
    while sample and time.monotonic() < window["stop"]:
        time.sleep(1)
        second += 1
        current = _cache_counts(base, resource)
        hits, served = (current[k] - previous[k] for k in ("hits", "served"))
        ratio = round(hits / served, 4) if served else None
        ready = _ready(base)
        if ready and not go.is_set():
            window["stop"] = time.monotonic() + seconds
            go.set()
        series.append({"second": second, "requests": served, "hit_ratio": ratio, "ready": ready})
        previous = current
    go.set()
    for worker in workers:
        worker.join()
    return series


def _cache_counts(base: str, resource: str | None) -> dict:
    text = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()  # noqa: S310
    label = re.escape(resource) if resource else "[a-z_]+"
    counts = {}
    for event in ("hits", "misses", "stale", "bypass"):
        found = re.findall(rf'shelf_cache_{event}_total\{{resource="{label}"\}} ([0-9.e+]+)', text)
        counts[event] = sum(float(value) for value in found)
    return {"hits": counts["hits"] + counts["stale"], "served": sum(counts.values())}


def _events_by_resource(base: str) -> dict[str, dict[str, int]]:
    text = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()  # noqa: S310
    events: dict[str, dict[str, int]] = {}
    pattern = r'shelf_cache_(hits|misses|stale|bypass)_total\{resource="([a-z_]+)"\} ([0-9.e+]+)'
    for event, resource, value in re.findall(pattern, text):
        events.setdefault(resource, {})[event] = int(float(value))
    return events


def _ready(base: str) -> bool:
    try:
        return urllib.request.urlopen(base + "/readyz", timeout=2).status == 200  # noqa: S310
    except OSError:  # a 503 (HTTPError) or no answer
        return False


def _one_review_delay(base: str, product_id: int) -> float | None:
    status, product = _get(f"{base}/v1/products/{product_id}")
    if status != 200:
        return None
    before = product["rating"]["count"]
    body = json.dumps({"rating": 5, "title": "bench", "author": "bench"}).encode()
    request = urllib.request.Request(  # noqa: S310 - local server
        f"{base}/v1/products/{product_id}/reviews",
        data=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
    )
    urllib.request.urlopen(request, timeout=10)  # noqa: S310
    posted = time.perf_counter()
    while time.perf_counter() - posted < 60:
        if _get(f"{base}/v1/products/{product_id}")[1]["rating"]["count"] > before:
            return time.perf_counter() - posted
        time.sleep(0.02)
    return None


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - local server
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def _wait_until_up(base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1)  # noqa: S310
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the API did not start")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--warm-products", type=int, default=10_000)
    parser.add_argument("--warm-runs", type=int, default=5)
    parser.add_argument("--reviews", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--zipf", type=float, default=1.1, help="popularity exponent, as the load test's")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--popularity-seconds", type=float, default=20)
    parser.add_argument("--cold-seconds", type=float, default=15)
    parser.add_argument(
        "--catalog-products", type=int, default=100_000, help="seeded when the database is empty"
    )
    parser.add_argument(
        "--catalog-reviews", type=int, default=1_000_000, help="seeded when the database is empty"
    )
    parser.add_argument(
        "--benches",
        default="warm,staleness,cold-start",
        help="comma-separated, of: warm, staleness, cold-start, cold-start-mixed",
    )
    args = parser.parse_args(argv)
    if not embedded.servers_named(dict(os.environ)):
        embedded.rerun_on_embedded_servers(
            "loadtest.jobs_bench", sys.argv[1:] if argv is None else argv, "shelf_bench"
        )
    if os.environ.get(embedded.MARK):  # the embedded Valkey's db 0 is make run's when it shares it
        os.environ["REDIS_URL"] = urlunsplit(urlsplit(os.environ["REDIS_URL"])._replace(path="/3"))
    bench_catalog.prepare(dict(os.environ), args.catalog_products, args.catalog_reviews, 42)
    benches = set(args.benches.split(","))
    random.seed(args.seed)
    settings = Settings.from_env()
    app = create_app(settings)
    with app.app_context():
        from sqlalchemy import func, select

        from api.db import session
        from catalog.models import Category, Product

        max_id = session().scalar(select(func.max(Product.id)))
        ids = list(session().scalars(select(Product.id).where(Product.is_active)))
        slugs = list(session().scalars(select(Category.slug).order_by(Category.id)))
    summary = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "cores": os.cpu_count()}
    if "warm" in benches:
        summary["warm"] = bench_warm(settings, args.warm_products, args.warm_runs)
    if "staleness" in benches:
        summary["staleness"] = bench_staleness(settings, args.reviews, max_id)
    if "cold-start" in benches:
        summary["cold_start"] = bench_cold_start(settings, args, ids)
    if "cold-start-mixed" in benches:
        summary["cold_start_mixed"] = bench_cold_start_mixed(settings, args, ids, slugs)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"jobs-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))  # noqa: T201


if __name__ == "__main__":
    main()
