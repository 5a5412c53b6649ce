"""Which products and list pages are read, recorded without slowing the read path.

A read adds one to an in-process counter (no Redis call, hit or miss); a
daemon thread flushes the counts every few seconds with one pipelined
``ZINCRBY`` batch into sorted sets on the queue's Redis, shared by every
process: product views by id, first list pages by their validated query in one
canonical JSON form. The warmer reads the top of both. Counts lost in a crash
are a few seconds of reads, which popularity can afford; a worker that stops
cleanly sends what it holds (``close``, from gunicorn's ``worker_exit``).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from decimal import Decimal

import orjson
import redis

POPULARITY_KEY = "shelf-jobs:popularity"
PAGES_KEY = "shelf-jobs:popular-pages"
log = logging.getLogger("shelf.popularity")


class ViewTracker:
    def __init__(self, connection: redis.Redis, flush_seconds: float):
        self.connection, self.flush_seconds = connection, flush_seconds
        self._counts: Counter[int] = Counter()
        self._pages: Counter[bytes] = Counter()
        self._lock = threading.Lock()
        self._sending = threading.Lock()  # a flush returns only after any flush in flight has landed
        self._stopped = threading.Event()
        self._flusher: threading.Thread | None = None

    def record(self, product_id: int) -> None:
        with self._lock:
            self._counts[product_id] += 1
            self._start_flusher()

    def record_page(self, query: dict) -> None:
        """One read of a first list page (a cursor's pages are not warmed), by its validated query."""
        if query.get("cursor") is not None:
            return
        member = page_member(query)
        with self._lock:
            self._pages[member] += 1
            self._start_flusher()

    def _start_flusher(self) -> None:
        if self._flusher is None and not self._stopped.is_set():
            self._flusher = threading.Thread(target=self._flush_forever, name="shelf-popularity", daemon=True)
            self._flusher.start()

    def close(self) -> int:
        """Stop the flusher and send what it holds; counts recorded afterwards stay buffered."""
        self._stopped.set()
        if self._flusher is not None:
            self._flusher.join()
        return self.flush()

    def flush(self) -> int:
        """Send the buffered counts to Redis; returns how many products and pages were counted."""
        with self._sending:
            return self._send()

    def _send(self) -> int:
        with self._lock:
            counts, self._counts = self._counts, Counter()
            pages, self._pages = self._pages, Counter()
        if not counts and not pages:
            return 0
        try:
            with self.connection.pipeline(transaction=False) as pipe:
                for product_id, views in counts.items():
                    pipe.zincrby(POPULARITY_KEY, views, product_id)
                for member, reads in pages.items():
                    pipe.zincrby(PAGES_KEY, reads, member)
                pipe.execute()
        except redis.RedisError:
            log.warning("popularity counts of %d products dropped: Redis unavailable", len(counts))
            return 0
        return len(counts) + len(pages)

    def _flush_forever(self) -> None:
        while not self._stopped.wait(self.flush_seconds):
            self.flush()


def most_viewed(connection: redis.Redis, limit: int) -> list[int]:
    return [int(member) for member in connection.zrevrange(POPULARITY_KEY, 0, limit - 1)]


def page_member(query: dict) -> bytes:
    """A list query as the JSON a query string would carry: amounts as strings, defaults left out."""
    plain = {
        name: f"{value:.2f}" if isinstance(value, Decimal) else value
        for name, value in query.items()
        if value is not None and name != "cursor"
    }
    return orjson.dumps(plain, option=orjson.OPT_SORT_KEYS)


def scored(connection: redis.Redis, key: str, limit: int) -> list[tuple[bytes, float]]:
    """The ``limit`` most read members of ``key`` with their counts, most read first."""
    return connection.zrevrange(key, 0, limit - 1, withscores=True)


def counts(connection: redis.Redis, key: str) -> tuple[float, int, int]:
    """Of ``key``: every count added up, how many members were counted exactly once, and how many
    members there are (``jobs.warming.Coverage`` estimates from these)."""
    scores = [score for _member, score in connection.zrange(key, 0, -1, withscores=True)]
    return sum(scores), sum(1 for score in scores if score == 1), len(scores)
