"""Checks every request passes before a view sees it: request line length, body size and content type.

The request target (path and query string) is bounded at ``MAX_TARGET_BYTES``
and a longer one is a 414 problem, on every path: the longest request the
OpenAPI document allows (every query parameter at its maxLength, each
character percent-encoded as 12 bytes) is about 5,700 bytes, so only input
the document already refuses gets here. gunicorn refuses request lines over
its own ``limit_request_line`` (8190, just above this bound plus method and
version) before the app sees them, in problem+json too (``server_errors``).
Werkzeug enforces ``MAX_CONTENT_LENGTH`` when the body is read; checking the
declared length up front answers 413 without reading anything. A chunked body
declares none: ``cut_at_the_limit`` tells, once it is read, whether there was more.
"""

from __future__ import annotations

from flask import Flask, current_app, request

from catalog.config import Settings

from ..errors import problem

BODY_METHODS = ("POST", "PUT", "PATCH")

MAX_TARGET_BYTES = 8000
"""Longest request target (path and query string, as sent) Shelf answers; the OpenAPI document says so."""


def target_bytes(environ: dict) -> int:
    """The request target's length as sent: gunicorn and werkzeug's server keep it in RAW_URI /
    REQUEST_URI (latin-1 strings, a byte per character); else it is rebuilt, decoded, from its parts."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw is None:
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        raw = f"{path}?{environ.get('QUERY_STRING', '')}"
    return len(raw)


def check_target() -> None:
    length = target_bytes(request.environ)
    if length > MAX_TARGET_BYTES:
        detail = f"the path and query string are {length} bytes, over the {MAX_TARGET_BYTES}-byte limit"
        raise problem(414, detail, errors=[{"field": "_", "in": "query", "message": detail}])


def _is_json(mimetype: str) -> bool:
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def too_large():
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    return problem(413, f"request body is over the {limit}-byte limit")


def cut_at_the_limit(body: bytes) -> bool:
    """Whether a chunked ``body`` (no declared length) was cut short: Werkzeug stops reading one at
    ``MAX_CONTENT_LENGTH`` without saying so, so a body that fills the limit is checked for one more
    byte on the connection. An over-long body is then a 413, not a truncated document's 400."""
    return (
        request.content_length is None
        and len(body) >= current_app.config["MAX_CONTENT_LENGTH"]
        and bool(request.environ["wsgi.input"].read(1))
    )


def check_body() -> None:
    if request.routing_exception is not None:
        return  # an unknown path or method answers 404/405, whatever the body
    if (
        request.content_length is not None
        and request.content_length > current_app.config["MAX_CONTENT_LENGTH"]
    ):
        raise too_large()
    if request.method in BODY_METHODS and not _is_json(request.mimetype):
        raise problem(415, "send the request body as application/json")


def init_app(app: Flask, settings: Settings) -> None:
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.before_request(check_target)
    app.before_request(check_body)
