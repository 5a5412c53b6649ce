"""The arms of a benchmark run and how one is run: a fresh server, the cache prepared, Locust, probes.

Every arm gets the same workload, seed and duration against its own gunicorn; they differ only in
the cache: **warm** (purged, then pre-warmed), **cold** (purged just before the load), **off**
(``SHELF_CACHE_ENABLED=false``: the same code path with the null backend) and **floor** (only
``/healthz``, the framework's ceiling). Around the load the runner reads /metrics and Redis INFO, and
a monitor thread samples both and the CPU of every process involved once a second.
"""

from __future__ import annotations

import argparse
import csv
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from . import probes
from .histogram import Histograms, percentiles
from .server import ROOT, flask, gunicorn, venv_tool

MIXED = ("ShopperUser", "BrowserUser", "WriterUser")
FLOOR = ("FloorUser",)
PERCENTILES = (0.5, 0.95, 0.99, 0.999)
CPU_SKIP_SAMPLES = 3
"""Monitor samples left out of CPU rates: Locust's own start-up (imports, spawning) is not load."""


@dataclass(frozen=True)
class Arm:
    name: str
    title: str
    cache_enabled: bool
    warm: bool
    users: tuple[str, ...]
    locust_args: tuple[str, ...] = ()
    app_env: tuple[tuple[str, str], ...] = ()
    switched_off: str = ""
    """For a diagnostic arm (detail with one part of the app off, not judged by any target): that part."""


DETAIL_ONLY = (("ShopperUser",), ("--revalidate-share", "0"))
HEAVY_WRITES = ("--write-share", "0.1")
"""The write-heavy arms' share of writes (ten times the default), to see how the cache degrades."""


def detail_without(name: str, part: str, setting: str, what_it_shows: str) -> Arm:
    """The detail arm with ``part`` switched off by ``setting=false``."""
    title = f"as detail, with {part} off ({setting}=false): {what_it_shows}"
    return Arm(name, title, True, True, *DETAIL_ONLY, ((setting, "false"),), switched_off=part)


ARMS = {
    "warm": Arm("warm", "mixed workload, cache on, pre-warmed", True, True, MIXED),
    "cold": Arm("cold", "mixed workload, cache on, purged before the load", True, False, MIXED),
    "off": Arm("off", "mixed workload, cache off (SHELF_CACHE_ENABLED=false)", False, False, MIXED),
    "warm-heavy": Arm(
        "warm-heavy", "mixed workload with 10% writes, cache on, pre-warmed", True, True, MIXED, HEAVY_WRITES
    ),
    "off-heavy": Arm(
        "off-heavy", "mixed workload with 10% writes, cache off", False, False, MIXED, HEAVY_WRITES
    ),
    "detail": Arm(
        "detail", "product detail only (no revalidation), cache on, pre-warmed", True, True, *DETAIL_ONLY
    ),
    "detail-off": Arm(
        "detail-off",
        "product detail only (no revalidation), cache off (SHELF_CACHE_ENABLED=false)",
        False,
        False,
        *DETAIL_ONLY,
    ),
    "detail-nolimit": detail_without(
        "detail-nolimit", "the rate limiter", "SHELF_RATE_LIMITS_ENABLED", "what the limiter costs"
    ),
    "detail-flask": detail_without(
        "detail-flask", "the fast path", "SHELF_FAST_PATH", "every hit through Flask"
    ),
    "floor": Arm("floor", "/healthz only (the framework's floor)", True, False, FLOOR),
}
"""Every arm the runner knows: three mixed-workload arms, two with ten times the writes, then product
detail alone (cached, uncached, cached without the rate limiter, cached without the fast path) and
/healthz alone."""


def app_env(base: dict[str, str], opts: argparse.Namespace, arm: Arm) -> dict[str, str]:
    """The server's environment: the benchmark database and Redis db, and the arm's cache switch.

    Every Locust user comes from 127.0.0.1, so the per-client rate limits would turn the load into
    429s; unless asked to keep them, their budgets are raised out of reach. The limiter still runs
    (and still costs its Redis round trips), as it would in production.
    """
    env = {**base, "DATABASE_URL": opts.database_url, "REDIS_URL": opts.redis_url}
    env["SHELF_CACHE_ENABLED"] = "true" if arm.cache_enabled else "false"
    if not opts.keep_rate_limits:
        env["SHELF_RATE_LIMIT_READS"] = env["SHELF_RATE_LIMIT_WRITES"] = "1000000000/minute"
    return env | dict(arm.app_env)


def locust_command(
    opts, base_url: str, users: tuple[str, ...], seconds: float, out: Path, seed: int, extra: tuple = ()
) -> list[str]:
    command = [venv_tool("locust"), "-f", "loadtest/locustfile.py", "--headless", "--only-summary"]
    command += ["-u", str(opts.users), "-r", str(opts.spawn_rate or opts.users), "-t", f"{int(seconds)}s"]
    command += ["--host", base_url, "--loglevel", "WARNING", "--exit-code-on-error", "0"]
    command += ["--stop-timeout", "5", "--csv", str(out), "--csv-full-history", "--html", f"{out}.html"]
    if opts.processes > 1:
        command += ["--processes", str(opts.processes)]
    command += workload_args(opts, seed, out)
    return command + list(extra) + list(users)


def workload_args(opts, seed: int, out: Path) -> list[str]:
    return [
        *("--catalog-size", str(opts.catalog_size), "--ids-file", str(opts.ids_file)),
        *("--zipf-exponent", str(opts.zipf_exponent), "--popularity-seed", str(opts.popularity_seed)),
        *("--write-share", str(opts.write_share), "--revalidate-share", str(opts.revalidate_share)),
        *("--shopper-weight", str(opts.shopper_weight), "--browser-weight", str(opts.browser_weight)),
        *("--writers", str(opts.writers), "--seed", str(seed), "--latency-file", f"{out}-latency"),
        *(["--allow-rate-limits"] if opts.keep_rate_limits else []),
    ]


def start_locust(command: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    with log_path.open("wb") as log:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603


# --- preparing the cache ------------------------------------------------------------------------


def purge(env: dict[str, str]) -> str:
    return flask(["cache", "purge", "--yes"], env).stdout.strip()


def warm_command(env: dict[str, str]) -> list[str] | None:
    """``cache warm --scope all --sync`` when this version of the app has it (per its --help)."""
    result = flask(["cache", "warm", "--help"], env, check=False)
    if result.returncode != 0 or "--scope" not in result.stdout or "all" not in result.stdout:
        return None
    return ["cache", "warm", "--scope", "all", *(["--sync"] if "--sync" in result.stdout else [])]


def warm_by_command(env: dict[str, str], args: list[str]) -> dict:
    started = time.monotonic()
    result = flask(args, env, check=False)
    return {
        "method": "command",
        "command": "flask --app api " + " ".join(args),
        "seconds": round(time.monotonic() - started, 1),
        "ok": result.returncode == 0,
        "output": (result.stdout.strip().splitlines() or [""])[-1][:300],
        "error": result.stderr.strip()[-500:] if result.returncode else "",
    }


def warm_by_workload(opts, server, env: dict[str, str], out: Path) -> dict:
    """Run the arm's workload (another seed) until the hit ratio per window stops rising."""
    command = locust_command(opts, server.base_url, MIXED, opts.warm_max, out, opts.seed + 1)
    process = start_locust(command, env, out.with_suffix(".log"))
    started, windows = time.monotonic(), []
    previous = probes.scrape(server.base_url)
    while process.poll() is None and time.monotonic() - started < opts.warm_max:
        time.sleep(opts.warm_window)
        current = probes.scrape(server.base_url)
        ratio = probes.hit_ratio(probes.all_resources(probes.delta(current, previous)["cache"]))
        windows.append(None if ratio is None else round(ratio, 4))
        previous = current
        if plateaued(windows, opts.warm_windows, opts.warm_rise):
            break
    stop_gracefully(process)
    return {
        "method": "workload",
        "command": "the arm's workload with seed + 1, until the hit ratio per window stopped rising",
        "seconds": round(time.monotonic() - started, 1),
        "ok": True,
        "window_seconds": opts.warm_window,
        "window_hit_ratios": windows,
    }


def plateaued(ratios: list[float | None], windows: int, rise: float) -> bool:
    """True once the last window's ratio is less than ``rise`` above the one ``windows`` before it."""
    if len(ratios) <= windows or ratios[-1] is None or ratios[-1 - windows] is None:
        return False
    return ratios[-1] - ratios[-1 - windows] < rise


def stop_gracefully(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def warm_processes(arm: Arm, opts, server, env: dict[str, str], out: Path) -> dict:
    """The arm's own workload (another seed) for a while, so every gunicorn worker's near cache holds
    what a server that has been running would: the command above fills Redis, not the processes."""
    command = locust_command(
        opts, server.base_url, arm.users, opts.process_warmup, out, opts.seed + 1, arm.locust_args
    )
    process = start_locust(command, env, out.with_suffix(".log"))
    try:
        process.wait(opts.process_warmup + 60)
    finally:
        stop_gracefully(process)
    return {"seconds": opts.process_warmup, "users": list(arm.users)}


def prepare_cache(arm: Arm, opts, server, env: dict[str, str], out: Path) -> dict:
    prepared = {"purge": purge(env)}
    if arm.warm:
        args = None if opts.warm_by_workload else warm_command(env)
        warm = warm_by_command(env, args) if args else None
        if warm is None or not warm["ok"]:
            fallback = warm_by_workload(opts, server, env, out.parent / "warmup")
            fallback["after_failed_command"] = warm
            warm = fallback
        elif opts.process_warmup > 0:
            warm["processes"] = warm_processes(arm, opts, server, env, out.parent / "process-warmup")
        prepared["warm"] = warm
    return prepared


# --- one arm ------------------------------------------------------------------------------------


def idle_redis_rate(client: redis.Redis, seconds: float) -> float:
    """Commands/s the Redis server processes with no load on: other clients, and the app at rest."""
    before, started = probes.redis_counters(client)["total"], time.monotonic()
    time.sleep(seconds)
    after = probes.redis_counters(client)["total"]
    return max(0.0, (after - before - 2) / (time.monotonic() - started))  # the two INFO calls


def run_arm(arm: Arm, opts: argparse.Namespace, base_env: dict[str, str], out_dir: Path) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    env = app_env(base_env, opts, arm)
    client = redis.Redis.from_url(opts.redis_url)
    with gunicorn(env, out_dir / "gunicorn.log") as server:
        prepared = prepare_cache(arm, opts, server, env, out_dir / "locust")
        idle_rate = idle_redis_rate(client, opts.settle)
        measured = measure(arm, opts, server, env, client, out_dir / "locust")
    client.close()
    return {
        "arm": arm.name,
        "title": arm.title,
        "prepared": prepared,
        "idle_redis_per_s": idle_rate,
        **measured,
    }


def measure(arm: Arm, opts, server, env: dict[str, str], client: redis.Redis, out: Path) -> dict:
    metrics_before, redis_before = probes.scrape(server.base_url), probes.redis_counters(client)
    command = locust_command(opts, server.base_url, arm.users, opts.duration, out, opts.seed, arm.locust_args)
    started = time.monotonic()
    process = start_locust(command, env, out.with_suffix(".log"))
    monitor = probes.Monitor(
        server.base_url, server.pid, lambda: process.pid if process.poll() is None else None
    )
    monitor.start()
    try:
        process.wait(opts.duration + 120)
    finally:
        stop_gracefully(process)
        samples = monitor.stop()
    wall = time.monotonic() - started
    metrics_after, redis_after = probes.scrape(server.base_url), probes.redis_counters(client)
    return {
        "command": command,
        "locust_exit": process.returncode,
        "wall_seconds": round(wall, 2),
        "endpoints": endpoint_stats(out),
        "metrics": probes.delta(metrics_after, metrics_before),
        "redis": probes.redis_delta(redis_after, redis_before),
        "timeline": timeline(samples),
        "cpu": cpu_rates(samples),
    }


# --- reading the results ------------------------------------------------------------------------


def endpoint_stats(out: Path) -> dict[str, dict]:
    """Locust's CSV per endpoint name (and "Aggregated"), with 1%-resolution percentiles beside it."""
    histograms = Histograms.load(sorted(out.parent.glob(f"{out.name}-latency.*.json")))
    stats = {}
    with Path(f"{out}_stats.csv").open() as handle:
        for row in csv.DictReader(handle):
            counts = histograms.total() if row["Name"] == "Aggregated" else histograms.counts.get(row["Name"])
            fine = percentiles(counts, PERCENTILES) if counts else dict.fromkeys(PERCENTILES)
            stats[row["Name"]] = {
                "requests": int(row["Request Count"]),
                "failures": int(row["Failure Count"]),
                "rps": float(row["Requests/s"]),
                "p50": fine[0.5],
                "p95": fine[0.95],
                "p99": fine[0.99],
                "p99_9": fine[0.999],
                "locust_ms": {key: row[key] for key in ("50%", "95%", "99%", "99.9%", "100%")},
            }
    return stats


def timeline(samples: list[dict]) -> list[dict]:
    """Per-second hit ratios (product detail, all resources) and SQL statements, from the samples."""
    points = []
    for earlier, later in zip(samples, samples[1:], strict=False):
        change = probes.delta(later["metrics"], earlier["metrics"])
        product = change["cache"].get("product", {})
        points.append(
            {
                "t": round(later["t"] - samples[0]["t"], 2),
                "product_hit_ratio": probes.hit_ratio(product),
                "hit_ratio": probes.hit_ratio(probes.all_resources(change["cache"])),
                "statements": change["statements"],
            }
        )
    return points


def cpu_rates(samples: list[dict]) -> dict:
    """Cores used on average by each process group while Locust ran (its start-up left out)."""
    running = [sample for sample in samples if sample["cpu"]["load"] > 0][CPU_SKIP_SAMPLES:]
    if len(running) < 2:
        return {}
    first, last = running[0], running[-1]
    seconds = last["t"] - first["t"]
    cores = {name: (last["cpu"][name] - first["cpu"][name]) / seconds for name in first["cpu"]}
    cores["other"] = max(0.0, cores["machine"] - cores["server"] - cores["load"] - cores["servers"])
    return {"seconds": round(seconds, 1), **{name: round(value, 3) for name, value in cores.items()}}
