"""The SQLAlchemy engine and sessions, and the hook a write's side effects run from.

Service functions take a ``Session`` argument and never look it up themselves, so a view, a job
or a test calls them alike. ``after_commit`` is the one place a write's side effects (cache
invalidation, enqueueing) are registered: they run only once the transaction has committed,
never for a rollback.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from .config import Settings

_PENDING = "shelf_after_commit"

STATEMENT_TIMEOUT_MS = 5000
"""PostgreSQL's statement timeout for the app's queries: a runaway query fails instead of holding a
connection and a request thread; the slowest legitimate one (a deep category's list page) is far
under it."""


def make_engine(settings: Settings) -> Engine:
    return create_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        pool_pre_ping=True,
        connect_args={
            "connect_timeout": 5,
            # UTC: timestamps leave the API in UTC. jit off: JIT compiling short OLTP queries
            # (misestimated subtree walks) costs hundreds of ms for nothing.
            "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c timezone=UTC -c jit=off",
            "application_name": "shelf",
        },
    )


def make_sessionmaker(engine: Engine, effects: list | None = None) -> sessionmaker[Session]:
    """Sessions whose ``info["effects"]`` (one list shared by all of them) see every write."""
    factory = sessionmaker(
        engine, expire_on_commit=False, info={"effects": [] if effects is None else effects}
    )
    event.listen(factory, "after_commit", _run_after_commit)
    event.listen(factory, "after_rollback", _drop_after_commit)
    return factory


def after_commit(db: Session, callback: Callable[[], None]) -> None:
    """Run ``callback`` once ``db``'s current transaction commits; drop it on rollback."""
    db.info.setdefault(_PENDING, []).append(callback)


def _run_after_commit(db: Session) -> None:
    for callback in db.info.pop(_PENDING, []):
        callback()


def _drop_after_commit(db: Session) -> None:
    db.info.pop(_PENDING, None)


def count_statements(engine: Engine, counter) -> None:
    """Count every SQL statement the app sends (benchmarks report queries per 1,000 requests)."""
    event.listen(engine, "before_cursor_execute", lambda *_args: counter.inc())
