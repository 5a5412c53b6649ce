"""Keep-alive kept honest: a response goes out only once its request's body is off the connection.

A response sent before the body is read (a 413, a 415, a 401 or 403 on a write, a 429, a 404 or
405 with a body) leaves that body on the socket, ahead of the client's next request. Gunicorn
discards at most 64 KiB of it after the response, and closes the connection when there is more,
after the response already said ``Connection: keep-alive``: a client that sends its next request
on that connection sees it dropped (``RemoteDisconnected``). So this WSGI middleware, when any
response starts, reads and discards what is left of the body first, up to the largest body
Shelf accepts (``Settings.max_body_bytes``: no more than a write that is served reads) and for at
most ``DRAIN_SECONDS``. A body it cannot finish (declared larger than that, a chunked one running
past it, a client that stalls or breaks off) makes the response say ``Connection: close``, and
the server closes the connection after it. One rule for every early response, wherever it is
raised, and a no-op for a body the view read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from contextlib import suppress

from flask import Flask

DRAIN_SECONDS = 5.0
"""Longest a response waits for the rest of an unread body (gunicorn's own bound on its drain)."""

DRAIN_STEP = 64 * 1024

Wsgi = Callable[[dict, Callable], Iterable[bytes]]


class DrainUnreadBody:
    def __init__(self, wsgi_app: Wsgi, max_body_bytes: int):
        self.wsgi_app, self.max_body_bytes = wsgi_app, max_body_bytes

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if not has_body(environ):
            return self.wsgi_app(environ, start_response)

        def start(status: str, headers: list, exc_info=None):
            if not drain(environ, self.max_body_bytes):
                headers = [*headers, ("Connection", "close")]
                close_after(start_response)
            return start_response(status, headers, exc_info)

        return self.wsgi_app(environ, start)


def has_body(environ: dict) -> bool:
    return environ.get("CONTENT_LENGTH", "") not in ("", "0") or "HTTP_TRANSFER_ENCODING" in environ


def drain(environ: dict, limit: int) -> bool:
    """Read what is left of the request body, at most ``limit`` bytes within DRAIN_SECONDS; True when
    the body is all read (the connection can take the next request)."""
    declared = environ.get("CONTENT_LENGTH", "")
    if declared.isdigit() and int(declared) > limit:
        return False  # refused unread (413): draining it is more than a served write would read
    sock = environ.get("gunicorn.socket")
    previous = sock.gettimeout() if sock is not None else None
    deadline, drained = time.monotonic() + DRAIN_SECONDS, 0
    try:
        while drained <= limit and (left := deadline - time.monotonic()) > 0:
            if sock is not None:
                sock.settimeout(left)
            data = environ["wsgi.input"].read(DRAIN_STEP)
            if not data:
                return True
            drained += len(data)
        return False
    except Exception:  # noqa: BLE001 - a stalled (timeout), cut-off or malformed (chunk) body alike
        return False
    finally:
        if sock is not None:
            with suppress(OSError):  # a socket the client closed: the server finds out itself
                sock.settimeout(previous)


def close_after(start_response: Callable) -> None:
    """Make the server close the connection after this response. Gunicorn drops an application's
    ``Connection`` header (hop-by-hop) and decides for itself, so its response object, whose
    ``start_response`` this is, is told; servers that honour the header need nothing more."""
    server_response = getattr(start_response, "__self__", None)
    if callable(getattr(server_response, "force_close", None)):
        server_response.force_close()


def init_app(app: Flask, max_body_bytes: int) -> None:
    app.wsgi_app = DrainUnreadBody(app.wsgi_app, max_body_bytes)
