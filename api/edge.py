"""Flask wiring of the edge caches: the runtime's purger (``catalog.edge_purge``) and the write's header.

A request whose writes left an edge purge unacknowledged answers with ``X-Edge-Purge: pending``
(``done`` when every edge acknowledged); requests that purged nothing carry no such header.
"""

from __future__ import annotations

from flask import Flask, Response

from catalog.edge_purge import EdgePurger, unacknowledged

HEADER = "X-Edge-Purge"
EXTENSION_KEY = "shelf.edge"


def init_app(app: Flask, purger: EdgePurger | None) -> None:
    """Say what the request's purges came to; nothing when no edge is configured (no purger)."""
    if purger is None:
        return
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
