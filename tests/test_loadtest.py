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
from pathlib import Path

import pytest

from api.seed import seed_catalog
from loadtest import report
from loadtest.arms import plateaued
from loadtest.catalog import export_active_ids
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
        "SHELF_CACHE_PREFIX": f"smoke-{run_id}",
        "SHELF_RATE_LIMIT_PREFIX": f"smoke-{run_id}-ratelimit",
        "SHELF_WEB_WORKERS": "2",
        "SHELF_WEB_THREADS": "2",
        "SHELF_LOG_LEVEL": "WARNING",
    }
    with gunicorn(env, tmp_path / "gunicorn.log") as running:
        yield running


def run_locust(base_url: str, ids_file: Path, token: str, out: Path) -> subprocess.CompletedProcess:
    command = [venv_tool("locust"), "-f", "loadtest/locustfile.py", "--headless", "--only-summary"]
    command += ["-u", "12", "-r", "12", "-t", f"{SMOKE_SECONDS}s", "--host", base_url, "--csv", str(out)]
    command += ["--catalog-size", "300", "--ids-file", str(ids_file), "--write-share", "0.1"]
    command += ["--check-every", "1", "--shopper-weight", "2", "--browser-weight", "2", "--seed", "7"]
    env = {**os.environ, "SHELF_BENCH_TOKEN": token}
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
