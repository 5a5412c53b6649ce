"""Flask wiring of the edge caches: the purger (``catalog.edge_purge``) and the write's header.

A request whose writes left an edge purge unacknowledged answers with ``X-Edge-Purge: pending``
(``done`` when every edge acknowledged); requests that purged nothing carry no such header.
"""

from __future__ import annotations

from flask import Flask, Response
from sqlalchemy.engine import Engine

from catalog.config import Settings
from catalog.edge_purge import EdgePurger, unacknowledged

HEADER = "X-Edge-Purge"
EXTENSION_KEY = "shelf.edge"


def init_app(app: Flask, settings: Settings, engine: Engine) -> EdgePurger | None:
    """The app's purger, or None when no edge is configured."""
    if not settings.edge_purge_urls:
        return None
    purger = EdgePurger(
        engine, settings.edge_purge_urls, settings.edge_purge_timeout_ms, settings.edge_purge_mode
    )
    app.extensions[EXTENSION_KEY] = purger

    @app.before_request
    def _reset() -> None:
        unacknowledged.set(None)

    @app.after_request
    def _say(response: Response) -> Response:
        missing = unacknowledged.get()
        if missing is not None:
            response.headers[HEADER] = "pending" if missing else "done"
        return response

    return purger
