"""Refresh-behind: a stale entry's recompute runs off the request path.

Without it, the caller that wins a stale key's lease recomputes before it answers, so a key
read less often than its soft TTL is a database read every time it is read: stale-while-
revalidate helps only keys hot enough to be read twice in one refresh. With it, every caller
is served the stale entry at once, and the lease holder's recompute runs on one of a few
background threads, stored under the same lease and generation checks as any fill.

``concurrent.futures.ThreadPoolExecutor`` is not used because its queue is unbounded and it
cannot refuse work: a refresh that cannot be queued must fall back to the caller (the
refresh then happens the old way), never pile up behind a slow database. Threads start on
first use and again after a fork (a forked child has the queue but not the threads).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol

logger = logging.getLogger(__name__)

Task = Callable[[], None]


class Refresher(Protocol):
    def submit(self, task: Task) -> bool:
        """Queue ``task``; False when it cannot be queued now (the caller runs it itself)."""
        ...


class BackgroundRefresher:
    """A few daemon threads draining a bounded queue; each task runs inside ``context()``."""

    def __init__(
        self,
        threads: int = 2,
        backlog: int = 256,
        context: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext,
    ):
        if threads < 1 or backlog < 1:
            raise ValueError(f"need threads >= 1 and backlog >= 1, got {threads} and {backlog}")
        self.threads, self.backlog, self._context = threads, backlog, context
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._queue: queue.Queue[Task] = queue.Queue(backlog)

    def submit(self, task: Task) -> bool:
        self._start()
        try:
            self._queue.put_nowait(task)
        except queue.Full:
            return False
        return True

    def join(self) -> None:
        """Wait until every queued refresh has run (tests, and a graceful stop)."""
        self._queue.join()

    def _start(self) -> None:
        pid = os.getpid()
        if self._pid == pid:
            return
        with self._lock:
            if self._pid == pid:
                return
            self._queue = queue.Queue(self.backlog)  # a fork's copy may hold tasks no thread will run
            for number in range(self.threads):
                name = f"shelf-refresh-{number}"
                threading.Thread(target=self._drain, args=(self._queue,), name=name, daemon=True).start()
            self._pid = pid

    def _drain(self, tasks: queue.Queue[Task]) -> None:
        while True:
            task = tasks.get()
            try:
                with self._context():
                    task()
            except Exception:
                logger.exception("background refresh failed")
            finally:
                tasks.task_done()
