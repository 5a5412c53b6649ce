"""CORS for an allow-list of browser origins, off unless ``SHELF_CORS_ORIGINS`` names some.

Non-browser clients never need CORS, so by default no CORS header is sent and
browsers keep other sites' pages from reading Shelf's responses. With an
allow-list, flask-cors answers preflights and echoes the request's origin
only when it is on the list (never ``*``). Credentials stay off: writes use a
bearer token the page must hold itself, never a cookie the browser would
attach for any site.
"""

from __future__ import annotations

from flask import Flask
from flask_cors import CORS

from catalog.config import Settings

ALLOWED_HEADERS = ["Authorization", "Content-Type", "If-Match", "If-None-Match", "X-Request-ID"]
EXPOSED_HEADERS = ["ETag", "Location", "X-Request-ID", "Retry-After", "RateLimit", "RateLimit-Policy"]
METHODS = ["GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"]
PREFLIGHT_MAX_AGE_SECONDS = 600


def init_app(app: Flask, settings: Settings) -> None:
    origins = settings.cors_origins
    if not origins:
        return
    CORS(
        app,
        origins=list(origins),
        methods=METHODS,
        allow_headers=ALLOWED_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        supports_credentials=False,
        max_age=PREFLIGHT_MAX_AGE_SECONDS,
        # Without an Origin header flask-cors would list every allowed origin in one header.
        always_send=False,
        vary_header=True,
    )
