"""Response helpers shared by the views: JSON bytes out, ETags, conditional requests."""

from __future__ import annotations

from flask import Response, request
from werkzeug.http import parse_etags, unquote_etag

from catalog.representations import Rendered

from .errors import problem

JSON = "application/json"


def send(rendered: Rendered, status: int = 200, headers: dict | None = None) -> Response:
    """Send ``rendered``, or 304 when the client's If-None-Match already has it."""
    if status == 200 and client_has(request.environ, rendered.etag):
        return Response(status=304, headers={"ETag": rendered.etag, **(headers or {})})
    # Every header in one list: werkzeug's Headers.set scans all headers per call, add does not.
    fields = [("Content-Type", JSON), ("ETag", rendered.etag), *(headers or {}).items()]
    return Response(rendered.body, status=status, headers=fields)


def client_has(environ: dict, etag: str) -> bool:
    """Whether the request's If-None-Match names ``etag`` (weak comparison, as RFC 9110 asks).
    Takes the WSGI environ, so ``api.fast_path`` asks the same question without a request."""
    if "HTTP_IF_NONE_MATCH" not in environ:
        return False
    tag, _weak = unquote_etag(etag)
    return parse_etags(environ["HTTP_IF_NONE_MATCH"]).contains_weak(tag)


def check_if_match(current: Rendered) -> None:
    """412 unless If-Match is absent or names the current representation (strong comparison)."""
    if not request.if_match:
        return
    tag, _weak = unquote_etag(current.etag)
    if not request.if_match.contains(tag):
        raise problem(412, "If-Match does not match the current representation; fetch it again")


def no_content() -> Response:
    return Response(status=204)
