"""Every error leaves the API in one shape: RFC 9457 ``application/problem+json``.

Views and helpers raise :func:`problem` (or a service's domain error, mapped
here); one handler renders all of them, including webargs' validation errors
(flattened to one entry per field) and unexpected exceptions, which become a
500 that names only the request id, never a stack trace or SQL. A server that is
down (PostgreSQL, or the Redis of the cache or the queue) is a 503 that says
when to retry (``Retry-After``), never a 500.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

import orjson
import redis
from flask import Flask, Response, g, request
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError

from cache.api import CacheUnavailable
from catalog.services.errors import Busy, Conflict, DomainError, InvalidInput, NotFound, PreconditionFailed

PROBLEM_MIMETYPE = "application/problem+json"
PROBLEM_TYPE = "about:blank"
"""Every problem's type (RFC 9457 section 4.2.1): the status says what kind of error it is, ``title``
is its phrase, ``detail`` and ``errors`` say the rest. Shelf serves no page per problem type, so it
names none (a type URI that answers 404 would be worse than none)."""
RETRY_AFTER_SECONDS = 5
"""What a 503 for a server that is down asks clients to wait: about a Redis restart or a failover."""
log = logging.getLogger("shelf.api")


class Problem(HTTPException):
    """An HTTP error carrying everything the problem+json body needs."""

    def __init__(self, status: int, detail: str | None = None, *, errors=None, headers=None, members=None):
        self.code = status
        self.description = detail or HTTPStatus(status).phrase
        self.errors = errors
        self.extra_headers = headers or {}
        self.members = members or {}
        super().__init__(self.description)


def problem(status: int, detail: str | None = None, **kwargs) -> Problem:
    """Build a Problem to ``raise``: ``raise problem(404, "product 7 not found")``. ``members`` adds
    extension members to the document (RFC 9457 section 3.2), as /readyz adds its ``checks``."""
    return Problem(status, detail, **kwargs)


def field_errors(messages, location: str, prefix: str = "") -> list[dict]:
    """Flatten marshmallow's nested messages into ``[{field, in, message}]``."""
    if isinstance(messages, (list, tuple)) and all(isinstance(m, str) for m in messages):
        return [{"field": prefix or "_", "in": location, "message": m} for m in messages]
    out: list[dict] = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = "_" if key == "_schema" else str(key)
            out += field_errors(value, location, f"{prefix}.{name}" if prefix else name)
    else:
        out.append({"field": prefix or "_", "in": location, "message": str(messages)})
    return out


def render(status: int, title: str, detail: str, *, errors=None, headers=None, members=None) -> Response:
    body = {**(members or {}), "type": PROBLEM_TYPE, "title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    request_id = g.get("request_id")
    if request_id:
        body["request_id"] = request_id
    return Response(orjson.dumps(body), status=status, mimetype=PROBLEM_MIMETYPE, headers=headers)


def handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    title = HTTPStatus(status).phrase
    if isinstance(error, InternalServerError):
        original = getattr(error, "original_exception", None)
        if isinstance(original, OperationalError):
            return unavailable("the database")
        log.exception("unhandled error", exc_info=original or error)
        return render(500, title, "an internal error occurred; quote the request id when reporting it")
    if isinstance(error, Problem):
        return render(
            status,
            title,
            error.description,
            errors=error.errors,
            headers=error.extra_headers,
            members=error.members,
        )
    data = getattr(error, "data", None) or {}
    if "messages" in data:  # webargs validation failure: {location: {field: [messages]}}
        return _validation_problem(data["messages"], data.get("headers"))
    headers = dict(error.get_headers())
    headers.pop("Content-Type", None)
    return render(status, title, error.description or title, headers=headers)


def _validation_problem(messages: dict, headers=None) -> Response:
    errors = []
    for location, fields in messages.items():
        errors += field_errors(fields, "query" if location in ("query", "querystring") else location)
    # A bad query string is a malformed request (400); a bad body is unprocessable (422).
    status = 400 if all(e["in"] != "json" for e in errors) else 422
    if any(e["field"] == "_" and "Invalid JSON" in e["message"] for e in errors):
        status = 400
    names = ", ".join(sorted({e["field"] for e in errors}))
    return render(
        status,
        HTTPStatus(status).phrase,
        f"invalid input: {names}",
        errors=errors,
        headers=headers,
    )


def handle_domain_error(error: DomainError) -> Response:
    if isinstance(error, Busy):
        headers = {"Retry-After": str(error.retry_after)}
        return render(503, "Service Unavailable", str(error), headers=headers)
    status = {NotFound: 404, Conflict: 409, PreconditionFailed: 412, InvalidInput: 422}[type(error)]
    location = "query" if error.field in request.args else "json"
    if isinstance(error, InvalidInput) and location == "query":
        status = 400
    errors = [{"field": error.field, "in": location, "message": str(error)}] if error.field else None
    return render(status, HTTPStatus(status).phrase, str(error), errors=errors)


def handle_operational_error(error: OperationalError) -> Response:
    # One line, no traceback: during an outage every request lands here.
    log.warning("database unavailable: %s", str(error.orig or error).splitlines()[0])
    return unavailable("the database")


def handle_redis_error(error: redis.RedisError | CacheUnavailable) -> Response:
    # Reads and writes degrade without Redis; only what cannot (the queue, a purge) reaches here.
    log.warning("redis unavailable: %s", str(error).splitlines()[0] if str(error) else type(error).__name__)
    return unavailable("the queue or cache server")


def unavailable(what: str) -> Response:
    """The one 503 for a server that is down: problem+json with ``Retry-After``."""
    detail = f"{what} is unavailable; retry after Retry-After seconds"
    return render(503, "Service Unavailable", detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(DomainError, handle_domain_error)
    app.register_error_handler(OperationalError, handle_operational_error)
    app.register_error_handler(redis.RedisError, handle_redis_error)
    app.register_error_handler(CacheUnavailable, handle_redis_error)
