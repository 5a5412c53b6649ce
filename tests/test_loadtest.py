"""A smoke run of the Locust suite: every persona against a real gunicorn, and not a single failure.

A small seeded catalog on the test database, the server started as the benchmark runner starts it,
a few seconds of headless Locust with all four personas; then Locust's CSV must show every persona's
endpoints exercised and no failures. Every body is checked (``--check-every 1``). No timing is
asserted: this proves the suite and the API agree, not how fast either is. A few quick tests of the
workload's random streams and the latency histograms come first.
"""

from __future__ import annotations

import csv
import os
import secrets
import subprocess
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from catalog.seed import seed_catalog
from loadtest import live, report
from loadtest.arms import plateaued
from loadtest.bench_catalog import export_active_ids
from loadtest.endpoints import PERSONA_ENDPOINTS
from loadtest.histogram import Histograms, percentiles
from loadtest.server import ROOT, gunicorn, venv_tool
from loadtest.workload import WritePacer, Zipf, user_rng

SMOKE_SECONDS = 6


def test_zipf_is_skewed_and_replays_with_the_same_seed():
    zipf = Zipf(range(1, 10_001), exponent=1.0, seed=3)
    rng, replay = user_rng(5, "ShopperUser", 0), user_rng(5, "ShopperUser", 0)
    draws = [zipf.draw(rng) for _ in range(20_000)]
    assert [zipf.draw(replay) for _ in range(50)] == draws[:50]
    top = set(zipf.items[:100])  # the 1% most popular
    assert 0.4 < sum(draw in top for draw in draws) / len(draws) < 0.7
    assert set(draws) <= set(range(1, 10_001))


def test_write_pacer_keeps_writes_at_their_share():
    pacer = WritePacer(0.01)
    for _ in range(10_000):
        pacer.count(is_write=pacer.write_due())
    assert 99 <= pacer.writes <= 101


def test_histogram_percentiles_are_within_one_percent(tmp_path):
    histograms = Histograms()
    for value in range(1, 1001):
        histograms.add("x", value / 100)  # 0.01 .. 10 ms
    histograms.dump(tmp_path / "a.json")
    merged = Histograms.load([tmp_path / "a.json", tmp_path / "a.json"])
    found = percentiles(merged.counts["x"], (0.5, 0.99))
    assert found[0.5] == pytest.approx(5.0, rel=0.01)
    assert found[0.99] == pytest.approx(9.9, rel=0.01)


def test_warm_up_stops_once_the_hit_ratio_stops_rising():
    assert not plateaued([0.5, 0.6, 0.7], windows=2, rise=0.01)
    assert plateaued([0.5, 0.8, 0.805, 0.806], windows=2, rise=0.01)


@pytest.fixture
def token() -> str:
    return "bench-" + secrets.token_hex(8)


@pytest.fixture
def server(settings, redis_client, engine, token, tmp_path):
    seed_catalog(engine, products=300, reviews=2000, seed=1)
    run_id = secrets.token_hex(4)  # other test sessions may share the Redis db: keep our keys apart
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "SHELF_ENV": "test",
        "SHELF_API_TOKENS": f"bench:{token}",
        "SHELF_RATE_LIMIT_READS": "1000000/minute",  # every user comes from 127.0.0.1
        "SHELF_RATE_LIMIT_WRITES": "1000000/minute",
        "SHELF_KEY_PREFIX": f"smoke-{run_id}",
        "SHELF_WEB_WORKERS": "2",
        "SHELF_WEB_THREADS": "2",
        "SHELF_LOG_LEVEL": "WARNING",
    }
    with gunicorn(env, tmp_path / "gunicorn.log") as running:
        yield running


def run_locust(
    base_url: str, ids_file: Path | None, token: str, out: Path, **env_changes: str
) -> subprocess.CompletedProcess:
    command = [venv_tool("locust"), "-f", "loadtest/locustfile.py", "--headless", "--only-summary"]
    command += ["-u", "12", "-r", "12", "-t", f"{SMOKE_SECONDS}s", "--host", base_url, "--csv", str(out)]
    if ids_file is not None:
        command += ["--catalog-size", "300", "--ids-file", str(ids_file)]
    command += ["--write-share", "0.1"]
    command += ["--check-every", "1", "--shopper-weight", "2", "--browser-weight", "2", "--seed", "7"]
    env = {**os.environ, "SHELF_BENCH_TOKEN": token, **env_changes}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)  # noqa: S603


def test_hot_path_targets_are_judged_on_the_median_round():
    def one(detail, off, floor):
        return {"detail": {"rps": detail}, "detail-off": {"rps": off}, "floor": {"rps": floor}}

    rounds = [one(300, 100, 400), one(200, 100, 400), one(350, 100, 400)]  # 3x, 2x, 3.5x
    speedup = report.round_target(
        "x: at least 3x", rounds, ("detail", "rps"), ("detail-off", "rps"), lambda r: r >= 3, str, "req/s"
    )
    assert speedup.met is True and "median of 3 rounds 3.00x" in speedup.measured
    assert "the median round: 300 vs 100" in speedup.measured
    of_floor = report.round_target(
        "y: 85%", rounds, ("detail", "rps"), ("floor", "rps"), lambda r: r >= 0.85, str, "req/s", report.pct
    )
    assert of_floor.met is False and "75.0%" in of_floor.measured
    assert (
        report.round_target("z", [one(None, 1, 1)], ("detail", "rps"), ("floor", "rps"), bool, str, "").met
        is None
    )


@pytest.mark.system
def test_every_persona_runs_without_failures(server, settings, token, tmp_path):
    ids_file = tmp_path / "ids.txt"
    export_active_ids(settings.database_url, ids_file)
    result = run_locust(server.base_url, ids_file, token, tmp_path / "smoke")
    with (tmp_path / "smoke_stats.csv").open() as handle:
        stats = {row["Name"]: row for row in csv.DictReader(handle)}
    failures = (tmp_path / "smoke_failures.csv").read_text()
    assert int(stats["Aggregated"]["Failure Count"]) == 0, failures
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    for persona, endpoints in PERSONA_ENDPOINTS.items():
        for name in endpoints:
            assert int(stats.get(name, {}).get("Request Count", 0)) > 0, f"{persona} never sent {name}"


@pytest.mark.system
def test_without_ids_the_suite_reads_the_active_products_from_the_database(server, settings, token, tmp_path):
    """What `locust -f loadtest/locustfile.py --host ...` does next to `make run`: no 404s from
    guessed ids (the seeded catalog has inactive products)."""
    result = run_locust(server.base_url, None, token, tmp_path / "live", DATABASE_URL=settings.database_url)
    assert result.returncode == 0, result.stderr[-2000:]
    with (tmp_path / "live_stats.csv").open() as handle:
        stats = {row["Name"]: row for row in csv.DictReader(handle)}
    assert int(stats["Aggregated"]["Request Count"]) > 0
    assert int(stats["Aggregated"]["Failure Count"]) == 0, (tmp_path / "live_failures.csv").read_text()
    active = live.active_ids(settings.database_url)
    assert f"{len(active)} active products in the database" in result.stderr
    assert 0 < len(active) < 300


@pytest.fixture
def throttled(make_app):
    """A server with make run's default read budget (1,200 a minute per client)."""
    app = make_app(rate_limit_reads="1200/minute")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.port}"
    server.shutdown()
    thread.join(10)
    server.server_close()


@pytest.mark.system
def test_a_server_whose_read_budget_would_throttle_the_test_is_refused_with_the_fix(
    throttled, token, tmp_path
):
    assert live.read_budget(throttled) == (1200, 60)
    result = run_locust(throttled, None, token, tmp_path / "limited", SHELF_BENCH_CATALOG_SIZE="10")
    assert result.returncode != 0
    assert "allows 1200 reads per 60 s per client" in result.stderr
    assert "SHELF_RATE_LIMITS_ENABLED=false make run" in result.stderr
    stats = tmp_path / "limited_stats.csv"
    assert not stats.exists() or "/v1/products" not in stats.read_text()  # refused before any load


@pytest.mark.system
def test_the_budget_check_passes_an_unlimited_or_generous_server(make_app, server):
    assert live.budget_refusal(server.base_url) is None  # 1,000,000 a minute
    assert live.read_budget(server.base_url) == (1_000_000, 60)


def test_without_database_url_or_make_run_the_suite_says_how_to_name_the_catalog(monkeypatch, tmp_path):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("SHELF_DATA_DIR", str(tmp_path))
    with pytest.raises(SystemExit, match="no `make run` is running .* --ids-file"):
        live.database_url()


def test_the_benchmark_uses_the_named_servers_own_databases_or_asks_for_embedded_ones():
    from loadtest import run as bench

    named = {
        "DATABASE_URL": "postgresql://u@db.example:5433/shelf",
        "REDIS_URL": "redis://cache.example:6380/0",
    }
    opts = bench.parser().parse_args([])
    assert bench.resolve_servers(opts, named)
    assert (opts.database_url, opts.redis_url) == (
        "postgresql://u@db.example:5433/shelf_bench",
        "redis://cache.example:6380/3",
    )
    quick = bench.parser().parse_args(["--quick"])
    assert bench.resolve_servers(quick, named) and quick.database_url.endswith("/shelf_bench_quick")
    given = bench.parser().parse_args(["--database-url", "postgresql://u@h/x", "--redis-url", "redis://h/5"])
    assert bench.resolve_servers(given, {}) and given.database_url == "postgresql://u@h/x"
    assert not bench.resolve_servers(bench.parser().parse_args([]), {})  # unset: run on embedded servers
