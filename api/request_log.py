"""One JSON log line per request, tied together by a request id.

The id is taken from the client's ``X-Request-ID`` when it is a sane token
(so a proxy's id carries through) and generated otherwise; it is echoed in
the response and in every problem body. Query strings and headers are not
logged, so tokens never reach the logs.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, g, request

from catalog.logs import configure_logging

REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
log = logging.getLogger("shelf.request")


ENVIRON_KEY = "shelf.request_id"
"""Where ``api.fast_path`` leaves the id it gave a request before handing it on to Flask."""


def request_id_for(incoming: str) -> str:
    """The client's ``X-Request-ID`` when it is a sane token, else a new one."""
    return incoming if REQUEST_ID.match(incoming) else uuid.uuid4().hex


def log_request(
    request_id: str | None, method: str, path: str, status: int, started: float, remote_addr: str | None
) -> None:
    fields = {
        "request_id": request_id,
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        "remote_addr": remote_addr,
    }
    log.info("request", extra={"fields": fields})


def _start() -> None:
    g.started = time.perf_counter()
    given = request.environ.get(ENVIRON_KEY)
    g.request_id = given or request_id_for(request.headers.get("X-Request-ID", ""))


def _finish(response):
    response.headers.add("X-Request-ID", g.get("request_id", ""))  # set only here
    started = g.get("started") or time.perf_counter()
    request_id, status = g.get("request_id"), response.status_code
    log_request(request_id, request.method, request.path, status, started, request.remote_addr)
    return response


def init_app(app: Flask, level: str) -> None:
    configure_logging(level)
    app.before_request(_start)
    app.after_request(_finish)
