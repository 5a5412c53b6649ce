"""gunicorn's own error answers in problem+json, like every other error Shelf sends.

gunicorn answers some requests before the app sees them: a request line over
``limit_request_line`` (414), headers over their limits (431), a request it
cannot parse (400). It writes those as small HTML pages through one function,
``gunicorn.util.write_error``; ``install`` (called in each worker, from
gunicorn.conf.py) replaces it with one that writes an RFC 9457 problem with
gunicorn's own reason as the detail ("Request Line is too large (9000 > 8190)").
"""

from __future__ import annotations

import json

from gunicorn import util

from .errors import PROBLEM_MIMETYPE, PROBLEM_TYPE


def problem_response(status: int, reason: str, detail: str) -> bytes:
    """A complete HTTP/1.1 response (the connection closes after it) holding a problem document."""
    body = json.dumps({"type": PROBLEM_TYPE, "title": reason, "status": status, "detail": detail or reason})
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Connection: close\r\n"
        f"Content-Type: {PROBLEM_MIMETYPE}\r\n"
        f"Content-Length: {len(body.encode())}\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        "\r\n"
    )
    return head.encode("latin-1") + body.encode()


def write_problem(sock, status_int: int, reason: str, mesg: str) -> None:
    util.write_nonblock(sock, problem_response(status_int, reason, mesg))


def install() -> None:
    util.write_error = write_problem
