"""The circuit breaker's states, stepped with an injected clock."""

from __future__ import annotations

import threading

from cache.breaker import Breaker, BreakerState

from .support import FakeClock


def _opened(clock: FakeClock, changes: list) -> Breaker:
    breaker = Breaker(3, 5.0, clock, lambda old, new: changes.append((old, new)))
    for _ in range(3):
        breaker.record_failure()
    return breaker


def test_opens_after_threshold_consecutive_failures():
    breaker = Breaker(3, 5.0, FakeClock())
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # resets the streak
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.allow() and breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()


def test_half_open_after_cooldown_lets_exactly_one_probe_through():
    clock, changes = FakeClock(), []
    breaker = _opened(clock, changes)
    clock.advance(4.9)
    assert not breaker.allow()
    clock.advance(0.2)
    assert breaker.allow()
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow()


def test_probe_success_closes_and_failure_reopens():
    clock, changes = FakeClock(), []
    breaker = _opened(clock, changes)
    clock.advance(5)
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    clock.advance(5)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert changes[0] == (BreakerState.CLOSED, BreakerState.OPEN)
    assert changes[-1] == (BreakerState.HALF_OPEN, BreakerState.CLOSED)


def test_a_probe_that_never_reports_is_replaced_after_another_cooldown():
    clock = FakeClock()
    breaker = _opened(clock, [])
    clock.advance(5)
    assert breaker.allow()
    clock.advance(5)
    assert breaker.allow()


def test_late_failures_do_not_extend_an_open_breaker():
    clock = FakeClock()
    breaker = _opened(clock, [])
    clock.advance(4)
    breaker.record_failure()
    clock.advance(1)
    assert breaker.allow()


def test_concurrent_callers_get_one_probe():
    clock = FakeClock()
    breaker = _opened(clock, [])
    clock.advance(5)
    allowed = []
    threads = [threading.Thread(target=lambda: allowed.append(breaker.allow())) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert allowed.count(True) == 1


def test_a_clock_stepped_backwards_does_not_keep_it_open():
    clock = FakeClock()
    breaker = _opened(clock, [])
    clock.advance(-3600)
    assert breaker.allow()
