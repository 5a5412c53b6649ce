"""A thread-safe circuit breaker, so a Redis outage costs one timeout per cooldown, not per request.

Closed: calls pass and consecutive failures are counted. At ``threshold`` failures it
opens: calls are refused without touching Redis. After ``cooldown`` seconds it goes
half-open and lets exactly one probe through; the probe's success closes it, its failure
reopens it. A probe that never reports (its thread died) is replaced after another
cooldown. The clock is injected so tests step through the states without sleeping;
``on_change(old, new)`` is called outside the lock on every transition.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import IntEnum


class BreakerState(IntEnum):
    """Values exported by the breaker state gauge."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class Breaker:
    def __init__(
        self,
        threshold: int,
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState, BreakerState], None] | None = None,
    ):
        self.threshold, self.cooldown, self._clock = threshold, cooldown, clock
        self._on_change = on_change or (lambda old, new: None)
        self._lock = threading.Lock()
        self.state = BreakerState.CLOSED
        self._failures = 0
        self._since = 0.0  # when the breaker opened, or when the current probe started

    def allow(self) -> bool:
        """Whether a call may go to the store now; in half-open, True for one probe only."""
        with self._lock:
            if self.state is BreakerState.CLOSED:
                return True
            # A wall clock stepped backwards gives a negative age: probe rather than stay open.
            if 0 <= self._clock() - self._since < self.cooldown:
                return False
            old, self.state, self._since = self.state, BreakerState.HALF_OPEN, self._clock()
        self._changed(old, BreakerState.HALF_OPEN)
        return True

    def record_success(self) -> None:
        with self._lock:
            old, self.state, self._failures = self.state, BreakerState.CLOSED, 0
        self._changed(old, BreakerState.CLOSED)

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            old = self.state
            # Late failures of calls made before the breaker opened must not extend the cooldown.
            tripped = old is BreakerState.CLOSED and self._failures >= self.threshold
            if old is BreakerState.HALF_OPEN or tripped:
                self.state, self._since = BreakerState.OPEN, self._clock()
            new = self.state
        self._changed(old, new)

    def _changed(self, old: BreakerState, new: BreakerState) -> None:
        if old is not new:
            self._on_change(old, new)
