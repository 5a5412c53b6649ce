"""The edge arms: Shelf alone (cache on, off) and behind Varnish, side by side in one run.

Each arm starts a fresh gunicorn (``loadtest.server``) and, for the edge arms, a Varnish in front
of it (``loadtest.varnish``): ``edge`` is the repository's VCL with every write purging it
(``SHELF_EDGE_PURGE_URLS``), over Shelf with its cache on; ``edge-cache-off`` the same over Shelf
with its cache off; ``plain-varnish`` a TTL-only Varnish honouring Shelf's ``Cache-Control``
and nothing else (no tags stored, no purge), the baseline the edge's cost is judged against.
Per arm and workload, ``wrk`` (``--threads``, ``--connections``, ``--duration``) drives
``detail`` (``GET /v1/products/<id>`` over ``--hot`` ids, all fetched once before) and
``mixed`` (70% product detail, 20% list pages, 10% category reads). Meanwhile a checker writes
to ten of the hot products directly at Shelf on a fixed schedule (``--write-rate`` a second,
whatever a write's latency: the arms compared take the same writes) and reads them through the
arm's front door, counting reads that began after a write's 2xx and show an older version:
apart, those after a write that answered ``X-Edge-Purge: pending`` (which the README allows).
Hit ratios: Varnish's counters (``varnishstat``) and Shelf's own (``/v1/admin/cache/stats``).

Prints the results as JSON and a markdown table, and saves them under ``loadtest/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import orjson
import redis
import urllib3
from sqlalchemy import create_engine, text

from catalog.config import normalize_database_url

from . import bench_catalog, environment, server, varnish

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "edge-bench-token"  # noqa: S105 - a throwaway server's write token
ARMS = ("alone", "edge", "plain-varnish", "edge-cache-off", "alone-cache-off")
"""In this order: the arms whose ratios the targets name run next to each other."""
WORKLOADS = ("detail", "mixed")
WRITTEN = 10
"""Hot products the checker writes to, one write in flight each: room for 2 writes a second that
take up to 5 s (a starved Shelf behind a busy Varnish)."""
WRK_SCRIPT = """
local paths = {%s}
local weights = {%s}
request = function()
  local r = math.random()
  local pick = 1
  for i, w in ipairs(weights) do if r <= w then pick = i break end end
  local group = paths[pick]
  return wrk.format("GET", group[math.random(#group)])
end
"""
HTTP = urllib3.PoolManager(maxsize=8, retries=False, timeout=30)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loadtest.edge_bench", description=__doc__.split("\n\n")[0])
    p.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    p.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/shelf_bench")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/3")
    p.add_argument("--products", type=int, default=100_000, help="seeded when the database is empty")
    p.add_argument("--reviews", type=int, default=1_000_000)
    p.add_argument("--arms", default=",".join(ARMS))
    p.add_argument("--duration", type=int, default=30, help="seconds of wrk per arm and workload")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--hot", type=int, default=1000, help="product ids the readers spread over")
    p.add_argument("--write-rate", type=float, default=2.0, help="the checker's writes a second")
    p.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="an extra setting for every Shelf"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    opts = parser().parse_args(argv)
    env = {"DATABASE_URL": opts.database_url, "REDIS_URL": opts.redis_url}
    base_env = {**os.environ, **env}
    bench_catalog.prepare(base_env, opts.products, opts.reviews, 42)
    paths = workload_paths(opts.database_url, opts.hot)
    out = ROOT / "loadtest" / "results" / ("edge-" + datetime.now(UTC).strftime("%Y%m%d-%H%M%S"))
    out.mkdir(parents=True)
    results = {
        "command": "python -m loadtest.edge_bench " + " ".join(argv or sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "environment": environment.describe(opts.database_url, opts.redis_url),
        "arms": {},
    }
    for arm in opts.arms.split(","):
        print(f"arm {arm}", flush=True)
        results["arms"][arm] = run_arm(arm, opts, base_env, paths, out)
        (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print(json.dumps(results["arms"], indent=2))
    print(table(results))
    return 0


def workload_paths(database_url: str, hot: int) -> dict[str, list[str]]:
    engine = create_engine(normalize_database_url(database_url))
    with engine.connect() as conn:
        ids = conn.scalars(
            text("SELECT id FROM products WHERE is_active ORDER BY id LIMIT :n"), {"n": hot}
        ).all()
        slugs = conn.scalars(text("SELECT slug FROM categories ORDER BY id LIMIT 20")).all()
    engine.dispose()
    sorts = ("name", "price", "-rating", "newest")
    return {
        "detail": [f"/v1/products/{pid}" for pid in ids],
        "lists": [f"/v1/products?category={slug}&sort={sort}" for slug in slugs for sort in sorts]
        + [f"/v1/products?sort={sort}" for sort in sorts],
        "categories": ["/v1/categories"] + [f"/v1/categories/{slug}" for slug in slugs],
    }


def run_arm(arm: str, opts, base_env: dict, paths: dict, out: Path) -> dict:
    env = {
        **base_env,
        "SHELF_ENV": "development",
        "SHELF_API_TOKENS": f"bench:{TOKEN}",
        "SHELF_CACHE_ENABLED": "false" if arm.endswith("cache-off") else "true",
        "SHELF_RATE_LIMIT_READS": "1000000000/minute",
        "SHELF_RATE_LIMIT_WRITES": "1000000000/minute",
        "SHELF_WARM_ON_START": "false",
        **dict(setting.split("=", 1) for setting in opts.set),
    }
    edge_port = varnish.free_port()
    if arm.startswith("edge"):
        env["SHELF_EDGE_PURGE_URLS"] = f"http://127.0.0.1:{edge_port}"
    redis.Redis.from_url(opts.redis_url).flushdb()
    result: dict = {}
    with ExitStack() as stack:
        shelf = stack.enter_context(server.gunicorn(env, out / f"{arm}.log"))
        front, cache = shelf.base_url, None
        if arm != "alone" and arm != "alone-cache-off":
            backend_port = int(shelf.base_url.rsplit(":", 1)[1])
            cache = stack.enter_context(
                varnish.edge(backend_port, plain=arm == "plain-varnish", port=edge_port)
            )
            front = cache.url
        for workload in WORKLOADS:
            result[workload] = measure(workload, opts, shelf.base_url, front, cache, paths, out / arm)
    return result


def measure(workload: str, opts, origin: str, front: str, cache, paths: dict, out: Path) -> dict:
    groups = {"detail": [(paths["detail"], 1.0)]}.get(workload) or [
        (paths["detail"], 0.7),
        (paths["lists"], 0.9),
        (paths["categories"], 1.0),
    ]
    for group, _ in groups:
        for path in group:  # every URL once: the cached case the edge arms compare
            HTTP.request("GET", front + path)
    shelf_before, edge_before = shelf_stats(origin), cache.stats() if cache else {}
    checker = StaleChecker(origin, front, paths["detail"][:WRITTEN], opts.write_rate)
    checker.start()
    rps, errors = wrk(opts, front, groups, out.with_suffix(f".{workload}.lua"))
    checked = checker.stop()
    shelf_after, edge_after = shelf_stats(origin), cache.stats() if cache else {}
    return {
        "rps": rps,
        "errors": errors,
        **checked,
        "edge_hit_ratio": hit_ratio(edge_before, edge_after) if cache else None,
        "shelf_hit_ratio": shelf_hit_ratio(shelf_before, shelf_after),
    }


def wrk(opts, front: str, groups: list, script: Path) -> tuple[float, int]:
    script.parent.mkdir(parents=True, exist_ok=True)
    lua_paths = ", ".join("{" + ", ".join(f'"{p}"' for p in group) + "}" for group, _ in groups)
    script.write_text(WRK_SCRIPT % (lua_paths, ", ".join(str(w) for _, w in groups)))
    command = [
        "wrk",
        f"-t{opts.threads}",
        f"-c{opts.connections}",
        f"-d{opts.duration}s",
        "-s",
        str(script),
        front,
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout  # noqa: S603
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", output).group(1))
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    return rps, int(errors.group(1)) if errors else 0


class StaleChecker:
    """Writes to ``paths``' products at ``origin``, ``rate`` a second, and reads them through ``front``.

    Writes start on a schedule, not one after another: a serial writer's rate follows the write's
    latency, and an arm whose writes wait for purges would take fewer of them. One write per path
    at a time, so a path's acknowledged versions arrive in order; a tick whose paths are all busy
    is counted as ``writes_skipped``."""

    def __init__(self, origin: str, front: str, paths: list[str], rate: float):
        self.origin, self.front, self.paths, self.interval = origin, front, paths, 1 / rate
        self.acked = {path: (0, False) for path in paths}  # version, and whether its purge is pending
        self.stale = self.stale_pending = self.checked = self.writes = self.pending = self.skipped = 0
        self.write_seconds: list[float] = []
        self.samples: list[dict] = []  # the first stale reads' headers: where the old body came from
        self._busy: set[str] = set()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=len(paths), thread_name_prefix="edge-bench-write")
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._schedule), threading.Thread(target=self._read)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> dict:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self._pool.shutdown(wait=True)
        ordered = sorted(self.write_seconds) or [0.0]
        return {
            "stale_reads": self.stale,
            "stale_after_pending": self.stale_pending,
            "checked_reads": self.checked,
            "writes": self.writes,
            "writes_skipped": self.skipped,
            "purges_pending": self.pending,
            "write_ms_median": round(1000 * ordered[len(ordered) // 2], 1),
            "write_ms_max": round(1000 * ordered[-1], 1),
            "stale_samples": self.samples,
        }

    def _schedule(self) -> None:
        version = int(time.time() * 1000)  # above whatever an earlier run left in the descriptions
        next_tick = time.monotonic()
        while not self._stop.wait(max(0.0, next_tick - time.monotonic())):
            next_tick += self.interval
            with self._lock:
                idle = [path for path in self.paths if path not in self._busy]
                if not idle:
                    self.skipped += 1
                    continue
                path = random.choice(idle)  # noqa: S311
                self._busy.add(path)
            version += 1
            self._pool.submit(self._write, path, version)

    def _write(self, path: str, version: int) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        body = orjson.dumps({"description": f"edge-bench-{version}"})
        started = time.monotonic()
        try:
            response = HTTP.request("PATCH", self.origin + path, body=body, headers=headers)
            with self._lock:  # acknowledged before the path is free: its versions stay in order
                if response.status == 200:
                    pending = response.headers.get("X-Edge-Purge") == "pending"
                    self.write_seconds.append(time.monotonic() - started)
                    self.acked[path] = (version, pending)
                    self.writes += 1
                    self.pending += pending
        finally:
            with self._lock:
                self._busy.discard(path)

    def _read(self) -> None:
        while not self._stop.is_set():
            path = random.choice(self.paths)  # noqa: S311
            expected, pending = self.acked[path]
            response = HTTP.request("GET", self.front + path)
            description = orjson.loads(response.data).get("description", "")
            seen = int(description.rsplit("-", 1)[1]) if description.startswith("edge-bench-") else 0
            self.checked += 1
            if seen < expected and len(self.samples) < 5:
                headers = ("X-Cache", "X-Shelf-Cache", "Age", "X-Varnish", "Date")
                sample = {name: response.headers.get(name) for name in headers}
                self.samples.append({"path": path, "expected": expected, "seen": seen, **sample})
            if seen < expected:  # after a write whose purge is pending, README says it may be
                self.stale_pending += pending
                self.stale += not pending


def shelf_stats(origin: str) -> dict:
    response = HTTP.request(
        "GET", origin + "/v1/admin/cache/stats", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    return orjson.loads(response.data)["resources"]


def shelf_hit_ratio(before: dict, after: dict) -> float | None:
    def total(stats: dict, events: tuple[str, ...]) -> int:
        return sum(stats[resource].get(event, 0) for resource in stats for event in events)

    hits = total(after, ("hits", "stale")) - total(before, ("hits", "stale"))
    served = total(after, ("hits", "stale", "misses", "bypass")) - total(
        before, ("hits", "stale", "misses", "bypass")
    )
    return round(hits / served, 4) if served else None


def hit_ratio(before: dict, after: dict) -> float | None:
    hits = after.get("cache_hit", 0) - before.get("cache_hit", 0)
    misses = after.get("cache_miss", 0) - before.get("cache_miss", 0)
    passes = after.get("s_pass", 0) - before.get("s_pass", 0)
    return round(hits / (hits + misses + passes), 4) if hits + misses + passes else None


def table(results: dict) -> str:
    lines = [
        "| arm | workload | req/s | vs Shelf alone | edge hit ratio | Shelf hit ratio "
        "| stale reads / checked | writes (purge pending) | stale after a pending purge |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    arms = results["arms"]
    for workload in WORKLOADS:
        alone = arms.get("alone", {}).get(workload, {}).get("rps")
        for arm, by_workload in arms.items():
            r = by_workload[workload]
            ratio = f"{r['rps'] / alone:.2f}x" if alone else "-"
            edge = "-" if r["edge_hit_ratio"] is None else f"{r['edge_hit_ratio']:.1%}"
            shelf = "-" if r["shelf_hit_ratio"] is None else f"{r['shelf_hit_ratio']:.1%}"
            stale = f"{r['stale_reads']} / {r['checked_reads']}"
            writes = f"{r['writes']} ({r['purges_pending']})"
            lines.append(
                f"| {arm} | {workload} | {r['rps']:,.0f} | {ratio} | {edge} | {shelf} | {stale} | {writes} "
                f"| {r['stale_after_pending']} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
