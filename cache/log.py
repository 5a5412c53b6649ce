"""Rate-limited warnings, so a Redis outage logs a line every few seconds instead of per request.

Suppressed messages are counted and the count is reported with the next line that gets
through, so nothing is silently lost from the record.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

LOG_INTERVAL = 10.0
"""Seconds between two warnings of one rate-limited logger."""


class RateLimitedLog:
    def __init__(
        self,
        logger: logging.Logger,
        interval: float = LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.logger, self.interval, self._clock = logger, interval, clock
        self._lock = threading.Lock()
        self._last = float("-inf")
        self._suppressed = 0

    def warning(self, message: str, *args: object) -> None:
        with self._lock:
            if self._clock() - self._last < self.interval:
                self._suppressed += 1
                return
            self._last, suppressed, self._suppressed = self._clock(), self._suppressed, 0
        self.logger.warning(message + " (%d similar warnings suppressed)", *args, suppressed)
