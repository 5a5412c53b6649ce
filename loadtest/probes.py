"""What the runner reads around and during an arm: the app's /metrics, Redis INFO, and CPU time.

``/metrics`` gives the cache counters per resource (hit ratio = (hits + stale) / (hits + misses +
stale + bypass)) and ``shelf_db_statements_total``; Redis ``INFO`` gives commands processed (for the
whole server, so other clients count too: the runner subtracts the idle rate it measured just
before the arm). A ``Monitor`` thread samples all of it once a second during an arm, together with
the CPU seconds of the gunicorn and Locust process trees, the PostgreSQL and Redis servers, and the
whole machine, so the load generator's cost is measured rather than assumed.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil
import redis
from prometheus_client.parser import text_string_to_metric_families

from .server import get

CACHE_EVENTS = ("hits", "misses", "stale", "bypass")
SERVER_NAMES = ("postgres", "redis-server")


def scrape(base_url: str) -> dict:
    """The counters the report needs, from one ``/metrics`` page."""
    cache: dict[str, dict[str, float]] = {}
    statements = 0.0
    for family in text_string_to_metric_families(get(base_url + "/metrics").decode()):
        for sample in family.samples:
            if sample.name == "shelf_db_statements_total":
                statements += sample.value
            for event in CACHE_EVENTS:
                if sample.name == f"shelf_cache_{event}_total":
                    resource = sample.labels.get("resource", "?")
                    cache.setdefault(resource, dict.fromkeys(CACHE_EVENTS, 0.0))[event] += sample.value
    return {"cache": cache, "statements": statements}


def delta(after: dict, before: dict) -> dict:
    """``after - before`` for two ``scrape`` results."""
    cache = {}
    for resource, counts in after["cache"].items():
        earlier = before["cache"].get(resource, {})
        cache[resource] = {event: counts[event] - earlier.get(event, 0.0) for event in CACHE_EVENTS}
    return {"cache": cache, "statements": after["statements"] - before["statements"]}


def hit_ratio(counts: dict[str, float]) -> float | None:
    served = sum(counts.get(event, 0.0) for event in CACHE_EVENTS)
    return (counts.get("hits", 0.0) + counts.get("stale", 0.0)) / served if served else None


def all_resources(cache: dict[str, dict[str, float]]) -> dict[str, float]:
    total = dict.fromkeys(CACHE_EVENTS, 0.0)
    for counts in cache.values():
        for event in CACHE_EVENTS:
            total[event] += counts.get(event, 0.0)
    return total


def redis_counters(client: redis.Redis) -> dict:
    """Commands processed by the whole Redis server, in total and per command."""
    stats = client.info("stats")
    commands = {
        name.removeprefix("cmdstat_"): values["calls"] for name, values in client.info("commandstats").items()
    }
    return {"total": stats["total_commands_processed"], "commands": commands}


def redis_delta(after: dict, before: dict) -> dict:
    commands = {
        name: calls - before["commands"].get(name, 0)
        for name, calls in after["commands"].items()
        if calls - before["commands"].get(name, 0) > 0
    }
    return {"total": after["total"] - before["total"], "commands": commands}


def tree_cpu(pid: int | None) -> float:
    """User + system CPU seconds of a process and its live descendants (0 when it is gone)."""
    if pid is None:
        return 0.0
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    return sum(_cpu(process) for process in processes)


def servers_cpu() -> float:
    """CPU seconds of every PostgreSQL and Redis server process on the machine (all their clients)."""
    return sum(_cpu(p) for p in psutil.process_iter(["name"]) if p.info["name"] in SERVER_NAMES)


def machine_busy() -> float:
    """CPU seconds the whole machine spent not idle, summed over cores."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def _cpu(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system


@dataclass
class Monitor:
    """Samples /metrics and CPU once a second in a thread while an arm runs."""

    base_url: str
    server_pid: int
    load_pid: Callable[[], int | None]
    interval: float = 1.0
    samples: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="monitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> list[dict]:
        self._stop.set()
        self._thread.join()
        return self.samples

    def sample(self) -> dict:
        return {
            "t": time.monotonic(),
            "metrics": scrape(self.base_url),
            "cpu": {
                "server": tree_cpu(self.server_pid),
                "load": tree_cpu(self.load_pid()),
                "servers": servers_cpu(),
                "machine": machine_busy(),
            },
        }

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            with contextlib.suppress(OSError):  # a /metrics timeout under load: skip this second
                self.samples.append(self.sample())
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))
