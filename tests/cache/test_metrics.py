"""Metrics live in the registry they are given, and rate-limited logging counts what it drops."""

from __future__ import annotations

import logging

from prometheus_client import REGISTRY, CollectorRegistry

from cache.log import RateLimitedLog
from cache.metrics import Event, NullMetrics, PrometheusMetrics

from .support import FakeClock, sample


def test_every_event_is_a_counter_labelled_by_resource():
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    for event in Event:
        metrics.count(event, "product")
    assert all(sample(registry, event.value, "product") == 1 for event in Event)
    assert REGISTRY.get_sample_value("shelf_cache_hits_total", {"resource": "product"}) is None


def test_two_registries_do_not_collide():
    first, second = CollectorRegistry(), CollectorRegistry()
    PrometheusMetrics(first).count(Event.HITS, "product")
    PrometheusMetrics(second).breaker_state(2)
    assert (sample(first, "hits", "product"), sample(second, "hits", "product")) == (1, 0)
    assert sample(second, "breaker_state") == 2


def test_null_metrics_accept_everything():
    NullMetrics().count(Event.HITS, "product")
    NullMetrics().breaker_state(2)


def test_rate_limited_log_reports_suppressed_lines(caplog):
    clock = FakeClock()
    log = RateLimitedLog(logging.getLogger("shelf.cache"), interval=10, clock=clock)
    with caplog.at_level(logging.WARNING, logger="shelf.cache"):
        for _ in range(5):
            log.warning("redis down: %s", "refused")
        clock.advance(10)
        log.warning("redis down: %s", "refused")
    assert [r.getMessage() for r in caplog.records] == [
        "redis down: refused (0 similar warnings suppressed)",
        "redis down: refused (4 similar warnings suppressed)",
    ]
