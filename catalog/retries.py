"""A replay that runs in the background, once per process, until nothing is left to replay.

The durable outboxes (recompute requests, edge purges) each keep what a write could not deliver
as rows, and the process whose delivery failed replays them every second until their table is
empty. This is that loop, written once. The cache outbox (``catalog.invalidation``) runs its own: it
resumes the process's cache reads under the same lock as its last look at the table.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

RETRY_SECONDS = 1.0


class BackgroundRetry:
    """``start()`` runs ``replay`` every ``seconds`` in one daemon thread until ``pending()`` is 0;
    a replay raising one of ``errors`` is tried again at the next tick."""

    def __init__(
        self,
        name: str,
        replay: Callable[[], object],
        pending: Callable[[], int],
        errors: tuple[type[BaseException], ...],
        caught_up: str,
        log: logging.Logger,
        seconds: float = RETRY_SECONDS,
    ):
        self.name, self.replay, self.pending, self.errors = name, replay, pending, errors
        self.caught_up, self.log, self.seconds = caught_up, log, seconds
        self._running = threading.Lock()

    def start(self) -> None:
        if self._running.acquire(blocking=False):
            threading.Thread(target=self._loop, name=self.name, daemon=True).start()

    def _loop(self) -> None:
        try:
            while True:
                time.sleep(self.seconds)
                try:
                    self.replay()
                    if not self.pending():
                        self.log.warning(self.caught_up)
                        return
                except self.errors:
                    continue
        finally:
            self._running.release()
