"""A cached product read without the framework: a fresh cache hit answered before Flask.

``GET /v1/products/<id>`` is the hottest read, and once its entry is cached (in the process's
near cache, or in Redis), nearly all it costs is framework: a request context, URL routing,
flask-smorest's wrappers, a Response object and its header handling. This WSGI middleware
answers that one case itself and hands everything else, and every case it is not sure of, to
Flask untouched:

* only ``GET``, exactly ``/v1/products/<id>``, no query string, no body, no ``Origin`` (CORS is
  flask-cors's business), and only a fresh hit (``Region.peek``: no I/O when the near cache
  holds it, else one Redis read). A miss, a stale entry, one XFetch may refresh, a cached 404, a
  Redis error or an open breaker all go to Flask, with the read already made, and Flask decides;
  so does any exception raised here (logged), before a byte of the response is sent;
* it does what Flask's hooks do for such a request, with their functions, so each rule has one
  definition: the request id and the log line (``request_log``), the read budget
  (``RateLimiter.spend_read``; a request over budget goes to Flask with its token already spent, and
  Flask answers the 429), the view count, the cache headers (``caching.cache_headers``), 304 on
  ``If-None-Match``, and the security headers;
* ``tests/api/test_fast_path.py`` sends the same requests through it and through Flask and compares
  status, body and headers, so the two cannot drift apart unnoticed.

It must sit inside ProxyFix, which rewrites ``REMOTE_ADDR`` for the limiter and the log, so the
factory installs it before the guard rails. It binds to the app's extensions on first use,
when they all exist. ``SHELF_FAST_PATH=false`` turns it off.

Why by hand: it is an in-process version of what a reverse proxy's cache does, but one that
keeps Shelf's read-after-write guarantee (the near cache applies every invalidation it has
received before answering) and its rate limits, which no proxy or library knows about.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from flask import Flask

from cache.region import Region, Result
from catalog import edge_tags
from catalog.config import Settings
from catalog.models import MAX_INT
from catalog.popularity import ViewTracker

from . import caching, request_log
from .caching import HeaderPolicy, cache_headers
from .guards import rate_limits, security_headers
from .http import JSON, client_has

PRODUCT = re.compile(r"/v1/products/([1-9][0-9]{0,9})\Z")
OK, NOT_MODIFIED = "200 OK", "304 NOT MODIFIED"  # as werkzeug spells them

Wsgi = Callable[[dict, Callable], Iterable[bytes]]
Headers = list[tuple[str, str]]

log = logging.getLogger("shelf.api")


@dataclass(frozen=True)
class _Parts:
    region: Region
    header_policy: HeaderPolicy
    limiter: rate_limits.RateLimiter | None
    security_headers: list[tuple[str, str]]
    views: ViewTracker


class FastPath:
    def __init__(self, app: Flask, wsgi_app: Wsgi):
        self.app, self.wsgi_app = app, wsgi_app
        self._parts: _Parts | None = None

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        product_id = _product_read(environ)
        if product_id is None:
            return self.wsgi_app(environ, start_response)
        started = time.perf_counter()
        try:
            answer = self._answer(environ, product_id)
        except Exception:
            # Flask answers instead: it has its own fallbacks (a failing cache is a bypass) and error
            # handlers (problem+json), where an exception here would be gunicorn's bare 500.
            log.exception("fast path failed; Flask answers %s", environ.get("PATH_INFO"))
            answer = None
        if answer is None:
            return self.wsgi_app(environ, start_response)
        status, headers, body = answer
        start_response(status, headers)
        request_log.log_request(
            environ[request_log.ENVIRON_KEY],
            "GET",
            environ["PATH_INFO"],
            int(status[:3]),
            started,
            environ.get("REMOTE_ADDR"),
        )
        return [body]

    def _answer(self, environ: dict, product_id: int) -> tuple[str, Headers, bytes] | None:
        """Status, headers and body of a fresh hit; None hands the request to Flask, with what was
        done so far left in ``environ`` (the request id, the budget spent, the cache read)."""
        parts = self._parts or self._bind()
        request_id = request_log.request_id_for(environ.get("HTTP_X_REQUEST_ID", ""))
        environ[request_log.ENVIRON_KEY] = request_id
        hits = None
        if parts.limiter is not None:
            hits = parts.limiter.spend_read(environ.get("REMOTE_ADDR"), request_id)
            environ[rate_limits.SPENT] = hits
            if hits is not None and any(hit.breached for hit in hits):
                return None
        key = parts.region.keys.product(product_id)
        result, lookup = parts.region.peek(key)
        if result is None or result.entry.status != 200:
            environ[caching.LOOKUP] = (key, lookup)  # so Flask does not read the cache again
            return None
        parts.views.record(product_id)
        status, headers, body = _response(environ, result, parts.header_policy)
        if parts.header_policy.tag_header:
            headers.append((parts.header_policy.tag_header, edge_tags.header_value(key.entry)))
        if hits:
            headers.extend(rate_limits.rate_limit_headers(hits).items())
        headers.extend(parts.security_headers)
        headers.append(("X-Request-ID", request_id))
        return status, headers, body

    def _bind(self) -> _Parts:
        extensions = self.app.extensions
        self._parts = _Parts(
            extensions["shelf.region"],
            extensions["shelf.cache_headers"],
            extensions.get(rate_limits.EXTENSION_KEY),
            extensions[security_headers.EXTENSION_KEY],
            extensions["shelf.views"],
        )
        return self._parts


def _product_read(environ: dict) -> int | None:
    """The product id of a plain ``GET /v1/products/<id>`` (nothing Flask would treat differently)."""
    if (
        environ.get("REQUEST_METHOD") != "GET"
        or environ.get("QUERY_STRING")
        or "HTTP_ORIGIN" in environ
        or environ.get("CONTENT_LENGTH", "") not in ("", "0")
        or "HTTP_TRANSFER_ENCODING" in environ
    ):
        return None
    match = PRODUCT.match(environ.get("PATH_INFO", ""))
    if match is None:
        return None
    product_id = int(match[1])
    return product_id if product_id <= MAX_INT else None


def _response(environ: dict, result: Result, policy: HeaderPolicy) -> tuple[str, Headers, bytes]:
    """Status, headers and body of a hit, as ``caching.serve`` and ``http.send`` make them."""
    entry = result.entry
    headers = [("ETag", entry.etag), *cache_headers(result, policy).items()]
    if client_has(environ, entry.etag):
        return NOT_MODIFIED, headers, b""
    headers += [("Content-Type", JSON), ("Content-Length", str(len(entry.body)))]
    return OK, headers, entry.body


def init_app(app: Flask, settings: Settings) -> None:
    """Install in front of Flask when there is a cache to answer from."""
    if settings.fast_path and settings.cache_enabled:
        app.wsgi_app = FastPath(app, app.wsgi_app)
