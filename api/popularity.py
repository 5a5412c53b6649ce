"""Which products are viewed, recorded without slowing the read path.

A read adds one to an in-process counter (no Redis call, hit or miss); a
daemon thread flushes the counts every few seconds with one pipelined
``ZINCRBY`` batch into a sorted set on the queue's Redis, shared by every
process. The warmer reads the top of that set. Counts lost in a crash are a
few seconds of views, which popularity can afford.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

import redis

POPULARITY_KEY = "shelf-jobs:popularity"
log = logging.getLogger("shelf.popularity")


class ViewTracker:
    def __init__(self, connection: redis.Redis, flush_seconds: float):
        self.connection, self.flush_seconds = connection, flush_seconds
        self._counts: Counter[int] = Counter()
        self._lock = threading.Lock()
        self._flusher: threading.Thread | None = None

    def record(self, product_id: int) -> None:
        with self._lock:
            self._counts[product_id] += 1
            if self._flusher is None:
                self._flusher = threading.Thread(
                    target=self._flush_forever, name="shelf-popularity", daemon=True
                )
                self._flusher.start()

    def flush(self) -> int:
        """Send the buffered counts to Redis; returns how many products were counted."""
        with self._lock:
            counts, self._counts = self._counts, Counter()
        if not counts:
            return 0
        try:
            with self.connection.pipeline(transaction=False) as pipe:
                for product_id, views in counts.items():
                    pipe.zincrby(POPULARITY_KEY, views, product_id)
                pipe.execute()
        except redis.RedisError:
            log.warning("popularity counts of %d products dropped: Redis unavailable", len(counts))
            return 0
        return len(counts)

    def _flush_forever(self) -> None:
        while True:
            time.sleep(self.flush_seconds)
            self.flush()


def most_viewed(connection: redis.Redis, limit: int) -> list[int]:
    return [int(member) for member in connection.zrevrange(POPULARITY_KEY, 0, limit - 1)]
