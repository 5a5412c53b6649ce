"""Checks every request passes before a view sees it: body size and content type.

Werkzeug enforces ``MAX_CONTENT_LENGTH`` when the body is read; checking the
declared length up front answers 413 without reading anything.
"""

from __future__ import annotations

from flask import Flask, current_app, request

from .errors import problem

BODY_METHODS = ("POST", "PUT", "PATCH")


def _is_json(mimetype: str) -> bool:
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def check_body() -> None:
    if request.routing_exception is not None:
        return  # an unknown path or method answers 404/405, whatever the body
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is not None and request.content_length > limit:
        raise problem(413, f"request body is over the {limit}-byte limit")
    if request.method in BODY_METHODS and not _is_json(request.mimetype):
        raise problem(415, "send the request body as application/json")


def init_app(app: Flask, max_body_bytes: int) -> None:
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes
    app.before_request(check_body)
