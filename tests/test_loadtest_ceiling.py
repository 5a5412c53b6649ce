"""The ceiling arms' plumbing (loadtest.ceiling): wrk against each server really counts answers and
the server's CPU, every product id it asks for is a real one, and a machine without wrk is told so
instead of failing. No timing is asserted."""

from __future__ import annotations

import argparse
import os

import pytest

from catalog.seed import seed_catalog
from loadtest import ceiling, run
from loadtest.bench_catalog import export_active_ids
from loadtest.server import SERVERS, serve


@pytest.fixture
def wrk():
    """wrk drives these tests (.ci/run installs it; the README's "Two commands" says so)."""
    if (missing := ceiling.wrk_missing()) is not None:
        pytest.skip(f"{missing} (apt-get install wrk)")


def wrk_options(tmp_path, ids_file=None) -> argparse.Namespace:
    return argparse.Namespace(
        wrk_threads=1, wrk_connections=4, ids_file=ids_file or tmp_path / "none", seed=7, ceiling_rounds=1
    )


def server_env(settings) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url}


@pytest.mark.system
@pytest.mark.parametrize("server_name", SERVERS)
def test_wrk_counts_the_bare_apps_answers_and_the_servers_cpu(
    wrk, settings, redis_client, tmp_path, server_name
):
    env = server_env(settings) | {"SHELF_ENV": "test"}
    with serve(server_name, env, tmp_path / "server.log", ceiling.BARE_APP) as server:
        result = ceiling.run_wrk(wrk_options(tmp_path), server.base_url, "/", 2, server.pid)
    assert result["requests"] > 0 and result["rps"] > 0
    assert (result["non_2xx"], result["socket_errors"]) == (0, 0)
    assert result["server_cpu_ms_per_request"] > 0
    assert set(result["latency_ms"]) == {"p50", "p75", "p90", "p99"}


@pytest.mark.system
def test_product_detail_ids_come_from_the_catalog(wrk, settings, engine, redis_client, tmp_path):
    """Every request of the detail arm names an active product: no 404 among the answers."""
    seed_catalog(engine, products=30, reviews=0, seed=5)
    ids_file = tmp_path / "ids.txt"
    export_active_ids(settings.database_url, ids_file)
    env = ceiling.app_env(server_env(settings) | {"SHELF_ENV": "test"}, ceiling.CEILING_ARMS["detail"])
    with serve("granian", env, tmp_path / "server.log") as server:
        opts = wrk_options(tmp_path, ids_file)
        result = ceiling.run_wrk(opts, server.base_url, ceiling.DETAIL_PATH, 2, server.pid)
    assert result["requests"] > 0 and result["non_2xx"] == 0


def test_without_wrk_the_ceiling_is_skipped_and_says_why(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with no wrk on it
    opts = wrk_options(tmp_path)
    skipped = run.run_ceiling(opts, {}, tmp_path)
    assert "wrk is not installed" in skipped["skipped"]
    assert "ceiling: SKIPPED, wrk is not installed" in capsys.readouterr().err
    assert "Not run: wrk is not installed" in ceiling.markdown(skipped)


@pytest.mark.system
def test_a_rounds_warm_runs_the_cli_without_stopping_at_a_question(settings, redis_client):
    """``cache purge`` asks before it deletes; the rounds' warm answers for itself or the run dies."""
    ceiling.warm_redis(server_env(settings) | {"SHELF_ENV": "test"})
