"""The request's database session: opened on first use in a view, closed when the app context ends.

The engine and the sessionmaker are the runtime's (``catalog.runtime``); views get the request's
session from :func:`session`, and a cache fill may read a replica instead (:func:`fill_reads`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, current_app, g
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session


def init_app(app: Flask) -> None:
    app.teardown_appcontext(_close_session)


def session() -> Session:
    """The current request's session, opened on first use."""
    if "db" not in g:
        g.db = current_app.extensions["shelf.sessionmaker"]()
    return g.db


@contextmanager
def fill_reads() -> Iterator[None]:
    """Inside, :func:`session` is a replica's when ``catalog.replica`` trusts one for a cache fill."""
    replica = current_app.extensions.get("shelf.replica")
    replica_session = replica.fill_session() if replica is not None else None
    if replica_session is None:
        yield
        return
    request_session = g.pop("db", None)
    g.db = replica_session
    try:
        yield
    finally:
        replica_session.close()
        g.pop("db", None)
        if request_session is not None:
            g.db = request_session


def engine() -> Engine:
    return engine_of(current_app)


def engine_of(app: Flask) -> Engine:
    return app.extensions["shelf.engine"]


def _close_session(_exc: BaseException | None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()
