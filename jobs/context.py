"""The runtime a job runs in: its database sessions, cache regions and write effects.

Jobs are plain functions that take ids; they reach the database and the cache through a runtime
(``catalog.runtime``) built once per worker process from the environment, exactly as the API
builds its own, so a job's writes invalidate the cache the same way a request's do. A host that
runs jobs inline names its own runtime instead: the API does (``embed``) for the jobs a request
or a CLI command runs in its process (``SHELF_JOBS_EAGER``, ``cache warm --sync``), and a test or a
benchmark running an in-process worker picks one with ``use``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from catalog.config import Settings
from catalog.logs import configure_logging
from catalog.runtime import Runtime, build_runtime

_host: Callable[[], Runtime | None] = lambda: None  # noqa: E731 - replaced by embed()
_process: Runtime | None = None


def runtime() -> Runtime:
    """The host's runtime when the job runs inside one, else this process's."""
    global _process
    found = _host()
    if found is not None:
        return found
    if _process is None:
        settings = Settings.from_env()
        configure_logging(settings.log_level)  # the API's log lines, from a job too
        _process = build_runtime(settings)
    return _process


def embed(lookup: Callable[[], Runtime | None]) -> None:
    """Let the host name the runtime of the code running now (None: not inside the host)."""
    global _host
    _host = lookup


def use(process_runtime: Runtime | None) -> None:
    """Make ``process_runtime`` the runtime of jobs run in this process (an in-process worker)."""
    global _process
    _process = process_runtime


@contextmanager
def session() -> Iterator[Session]:
    db = runtime().sessions()
    try:
        yield db
    finally:
        db.close()
