"""The server's ceiling: the hot-path arms on gunicorn and on granian side by side, driven by wrk.

Locust on two cores caps what it measures well below what a server can answer, so these arms use
wrk (a C load generator, ``apt-get install wrk``), and Locust stays for the workload arms. Each round
runs every arm on every server, interleaved (detail on gunicorn, detail on granian, detail-off on
gunicorn, ...), each against a fresh server with the same workers and threads:

- **detail**: cached product detail over random active ids (cache purged and warmed by ``cache warm``
  once a round, then a short wrk warm-up per arm so every worker's near cache holds it), fast path on;
- **detail-flask**: as detail with ``SHELF_FAST_PATH=false`` (every hit through Flask): the fast
  path's gain behind each server;
- **detail-off**: the same requests with ``SHELF_CACHE_ENABLED=false``;
- **floor**: ``/healthz`` through Shelf (the framework's floor);
- **bare**: a plain WSGI callable returning a constant 700-byte body (loadtest/bare_wsgi.py): what
  the server itself can serve.

For each it records req/s, latency percentiles, non-2xx answers and the CPU per request of the
server's process tree (and of wrk, to show the generator is not the cap).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from .probes import tree_cpu
from .server import ROOT, SERVERS, SHELF_APP, flask, serve

SCRIPT = Path(__file__).with_name("ceiling.lua")
BARE_APP = "loadtest.bare_wsgi:app"
DETAIL_PATH = "/v1/products/{id}"


@dataclass(frozen=True)
class CeilingArm:
    name: str
    title: str
    path: str
    app_env: tuple[tuple[str, str], ...] = ()
    target: str = SHELF_APP


CEILING_ARMS = {
    arm.name: arm
    for arm in (
        CeilingArm("detail", "cached product detail, fast path on", DETAIL_PATH),
        CeilingArm(
            "detail-flask",
            "cached product detail, every hit through Flask",
            DETAIL_PATH,
            (("SHELF_FAST_PATH", "false"),),
        ),
        CeilingArm(
            "detail-off", "product detail, cache off", DETAIL_PATH, (("SHELF_CACHE_ENABLED", "false"),)
        ),
        CeilingArm("floor", "/healthz through Shelf", "/healthz"),
        CeilingArm("bare", "constant 700-byte body, bare WSGI", "/", target=BARE_APP),
    )
}


def wrk_missing() -> str | None:
    """Why the ceiling arms cannot run, or None when wrk is on PATH."""
    if shutil.which("wrk"):
        return None
    return "wrk is not installed (Debian/Ubuntu: apt-get install -y wrk); the ceiling arms need it"


def wrk_command(opts, base_url: str, path: str, seconds: float) -> list[str]:
    command = ["wrk", "-t", str(opts.wrk_threads), "-c", str(opts.wrk_connections), "-d", f"{int(seconds)}s"]
    command += ["--latency", "-s", str(SCRIPT), base_url, "--", path]
    return command + ([str(opts.ids_file), str(opts.seed)] if "{id}" in path else [])


UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def parse_wrk(output: str) -> dict:
    """req/s, requests, non-2xx/3xx answers, socket errors and latency percentiles (ms) from wrk."""

    def number(pattern: str) -> float:
        match = re.search(pattern, output)
        return float(match.group(1)) if match else 0.0

    latency = {
        f"p{pct}": float(value) * UNITS[unit]
        for pct, value, unit in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M)
    }
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {
        "rps": number(r"Requests/sec:\s+([\d.]+)"),
        "requests": int(number(r"(\d+) requests in")),
        "non_2xx": int(number(r"Non-2xx or 3xx responses: (\d+)")),
        "socket_errors": sum(map(int, errors.groups())) if errors else 0,
        "latency_ms": latency,
    }


def run_wrk(opts, base_url: str, path: str, seconds: float, server_pid: int) -> dict:
    """One wrk run; the result with the CPU seconds the server's processes and wrk spent."""
    server_before = tree_cpu(server_pid)
    process = subprocess.Popen(  # noqa: S603 - fixed arguments
        wrk_command(opts, base_url, path, seconds), cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    wrk = psutil.Process(process.pid)
    wrk_cpu = 0.0
    while process.poll() is None:
        try:
            times = wrk.cpu_times()
            wrk_cpu = times.user + times.system
        except psutil.Error:
            break
        time.sleep(0.5)
    output = process.communicate()[0]
    result = parse_wrk(output)
    server_cpu = tree_cpu(server_pid) - server_before
    requests = result["requests"] or 1
    result |= {
        "server_cpu_ms_per_request": round(1000 * server_cpu / requests, 4),
        "wrk_cores": round(wrk_cpu / seconds, 3),
        "server_cores": round(server_cpu / seconds, 3),
    }
    return result


def app_env(base_env: dict[str, str], arm: CeilingArm) -> dict[str, str]:
    """The arm's switches; every request comes from 127.0.0.1, so the per-client budgets are raised
    out of reach (the limiter still runs), as in the Locust arms."""
    env = {**base_env, **dict(arm.app_env)}
    env["SHELF_RATE_LIMIT_READS"] = env["SHELF_RATE_LIMIT_WRITES"] = "1000000000/minute"
    return env


def run_arm(arm: CeilingArm, server_name: str, opts, base_env: dict[str, str], out_dir: Path) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    env = app_env(base_env, arm)
    with serve(server_name, env, out_dir / f"{server_name}.log", arm.target) as server:
        if opts.ceiling_warmup > 0:
            run_wrk(opts, server.base_url, arm.path, opts.ceiling_warmup, server.pid)
        result = run_wrk(opts, server.base_url, arm.path, opts.ceiling_duration, server.pid)
    return {"arm": arm.name, "server": server_name, "title": arm.title, **result}


def warm_redis(env: dict[str, str]) -> None:
    """Purge, then cache every product: the cached arms only read, so one warm serves a round's
    arms on both servers (each arm's wrk warm-up then fills that server's near caches)."""
    flask(["cache", "purge", "--yes"], env)  # the CLI asks before it deletes
    flask(["cache", "warm", "--scope", "all", "--sync"], env)


def run_rounds(opts, base_env: dict[str, str], out_dir: Path, say) -> list[dict]:
    """``opts.ceiling_rounds`` rounds of every ceiling arm on every server, interleaved."""
    rounds = []
    for number in range(1, opts.ceiling_rounds + 1):
        say(f"ceiling round {number}: cache purged and warmed (every product), for the cached arms")
        warm_redis(base_env)
        results = {}
        for arm in CEILING_ARMS.values():
            for server_name in SERVERS:
                say(f"ceiling round {number}: {arm.name} on {server_name}, {opts.ceiling_duration}s")
                where = out_dir / f"round{number}" / arm.name
                results[f"{arm.name}@{server_name}"] = run_arm(arm, server_name, opts, base_env, where)
        rounds.append(results)
    return rounds


# --- the report section -------------------------------------------------------------------------


def median(values: list[float]) -> float | None:
    ordered = sorted(v for v in values if v is not None)
    if not ordered:
        return None
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def per_round(rounds: list[dict], arm: str, server: str, key: str) -> list[float]:
    return [r[f"{arm}@{server}"][key] for r in rounds if f"{arm}@{server}" in r]


def ratio_median(rounds: list[dict], top: tuple[str, str], bottom: tuple[str, str]) -> float | None:
    """The median over rounds of req/s(top) / req/s(bottom), each (arm, server) of the same round."""
    ratios = []
    for r in rounds:
        upper, lower = r.get(f"{top[0]}@{top[1]}"), r.get(f"{bottom[0]}@{bottom[1]}")
        if upper and lower and lower["rps"]:
            ratios.append(upper["rps"] / lower["rps"])
    return median(ratios)


def fmt(value: float | None, pattern: str) -> str:
    return "–" if value is None else pattern.format(value)


def arm_rows(rounds: list[dict]) -> list[str]:
    rows = []
    for arm in CEILING_ARMS.values():
        for server in SERVERS:
            rps = per_round(rounds, arm.name, server, "rps")
            if not rps:
                continue
            cpu = median(per_round(rounds, arm.name, server, "server_cpu_ms_per_request"))
            p99 = median([x.get("p99") for x in per_round(rounds, arm.name, server, "latency_ms")])
            bad = sum(per_round(rounds, arm.name, server, "non_2xx"))
            wrk = median(per_round(rounds, arm.name, server, "wrk_cores"))
            each = " / ".join(f"{value:,.0f}" for value in rps)
            rows.append(
                f"| {arm.name} | {server} | {fmt(median(rps), '{:,.0f}')} | {each} | {fmt(cpu, '{:.3f}')} "
                f"| {fmt(p99, '{:.1f}')} | {bad} | {fmt(wrk, '{:.2f}')} |"
            )
    return rows


def ratio_rows(rounds: list[dict]) -> list[str]:
    gunicorn_floor = ("bare", "gunicorn")
    checks = [
        ("cached detail on granian / gunicorn's constant-body floor", ("detail", "granian"), gunicorn_floor),
    ]
    for server in SERVERS:
        checks += [
            (f"{server}: cached detail / its own constant-body floor", ("detail", server), ("bare", server)),
            (f"{server}: cached / uncached detail", ("detail", server), ("detail-off", server)),
            (f"{server}: fast path on / off (cached detail)", ("detail", server), ("detail-flask", server)),
        ]
    checks.append(("cached detail, granian / gunicorn", ("detail", "granian"), ("detail", "gunicorn")))
    return [f"| {label} | {fmt(ratio_median(rounds, *pair), '{:.2f}x')} |" for label, *pair in checks]


def markdown(ceiling: dict | None) -> str:
    """The ceiling section of benchmarks.md (or why it did not run)."""
    if not ceiling:
        return "Not run (`--ceiling-rounds 0`)."
    if ceiling.get("skipped"):
        return f"Not run: {ceiling['skipped']}."
    rounds, opts = ceiling["rounds"], ceiling["options"]
    head = (
        f"wrk `-t{opts['wrk_threads']} -c{opts['wrk_connections']}`, {opts['duration']}s per arm after a "
        f"{opts['warmup']}s warm-up, interleaved rounds: {len(rounds)}; medians of the rounds."
    )
    table = [
        "| arm | server | req/s (median) | req/s per round | server CPU ms/request | p99 ms | non-2xx "
        "| wrk cores |",
        "|---|---|---:|---|---:|---:|---:|---:|",
        *arm_rows(rounds),
    ]
    ratios = ["| ratio (median of the rounds' ratios) | |", "|---|---:|", *ratio_rows(rounds)]
    return "\n".join([head, "", *table, "", *ratios])
