"""The Shelf app a job runs in: its database sessions, cache region and effects.

Jobs are plain functions that take ids; they reach the database and cache
through an app built once per worker process from the environment, exactly
as the API builds its own, so a job's writes invalidate the cache the same
way a request's do. Inside a request (eager mode) or a test, the current
Flask app is used instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, current_app, has_app_context
from sqlalchemy.orm import Session

_worker_app: Flask | None = None


def app() -> Flask:
    global _worker_app
    if has_app_context():
        return current_app._get_current_object()
    if _worker_app is None:
        from api import create_app

        _worker_app = create_app()
    return _worker_app


def use(flask_app: Flask | None) -> None:
    """Make ``flask_app`` the app of jobs run in this process (an in-process worker in tests)."""
    global _worker_app
    _worker_app = flask_app


@contextmanager
def session() -> Iterator[Session]:
    db = app().extensions["shelf.sessionmaker"]()
    try:
        yield db
    finally:
        db.close()
