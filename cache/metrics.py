"""Cache metrics: one prometheus_client counter per event, labelled by resource, and a breaker gauge.

Metrics are created against a registry passed in (never the global default), so tests read
exact values and the app decides how to expose them, including gunicorn multiprocess mode.
``NullMetrics`` is the no-op used when a region is built without metrics. The region only
ever calls ``count`` and ``breaker_state``, so another metrics system needs two methods.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge


class Event(StrEnum):
    HITS = "hits"
    LOCAL_HITS = "local_hits"
    MISSES = "misses"
    STALE = "stale"
    BYPASS = "bypass"
    FILLS = "fills"
    REFRESHES = "refreshes"
    FILL_REJECTED = "fill_rejected"
    LOCK_WAITS = "lock_waits"
    LOCK_WAIT_TIMEOUTS = "lock_wait_timeouts"
    NEGATIVE_CAPPED = "negative_capped"
    REDIS_ERRORS = "redis_errors"
    CORRUPT_ENTRIES = "corrupt_entries"


DESCRIPTIONS = {
    Event.HITS: "Fresh entries served from the cache",
    Event.LOCAL_HITS: "Entries read from the process's near cache instead of Redis (hits among them)",
    Event.MISSES: "Requests that computed the response (no usable entry)",
    Event.STALE: "Stale entries served (while another caller refreshes, or on creator error)",
    Event.BYPASS: "Requests that skipped the cache because it was unavailable",
    Event.FILLS: "Entries written",
    Event.REFRESHES: "Stale entries recomputed in the background after being served stale",
    Event.FILL_REJECTED: "Writes refused because an invalidation voided the lease (stale set prevented)",
    Event.LOCK_WAITS: "Callers that waited for another caller's fill",
    Event.LOCK_WAIT_TIMEOUTS: "Waits that ran out of budget and computed without storing",
    Event.NEGATIVE_CAPPED: "404s not cached because the negative-entry cap was reached",
    Event.REDIS_ERRORS: "Cache store errors and timeouts",
    Event.CORRUPT_ENTRIES: "Stored values that failed to decode and were treated as misses",
}


class Metrics(Protocol):
    def count(self, event: Event, resource: str) -> None: ...

    def breaker_state(self, state: int) -> None: ...


class NullMetrics:
    def count(self, event: Event, resource: str) -> None:
        return None

    def breaker_state(self, state: int) -> None:
        return None


class PrometheusMetrics:
    """Counters ``shelf_cache_<event>_total{resource=...}`` and gauge ``shelf_cache_breaker_state``."""

    def __init__(self, registry: CollectorRegistry, namespace: str = "shelf_cache"):
        self._counters = {
            event: Counter(f"{namespace}_{event}", text, ["resource"], registry=registry)
            for event, text in DESCRIPTIONS.items()
        }
        self._children: dict[tuple[Event, str], Counter] = {}
        self._breaker = Gauge(
            f"{namespace}_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open", registry=registry
        )

    def count(self, event: Event, resource: str) -> None:
        child = self._children.get((event, resource))
        if child is None:  # labels() costs a lock and a tuple build per call: look each child up once
            child = self._children[event, resource] = self._counters[event].labels(resource)
        child.inc()

    def breaker_state(self, state: int) -> None:
        self._breaker.set(state)
