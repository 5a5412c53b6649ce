"""Browser-facing security headers on every response, errors included.

The API serves JSON, so its Content-Security-Policy forbids everything
(``default-src 'none'``): a response opened in a browser can run nothing and
be framed by no one. The one HTML page, Swagger UI at ``/docs``, gets a policy
that allows where its files come from (the app itself, ``api.docs_page``, or a
CDN if ``OPENAPI_SWAGGER_UI_URL`` names one) and, by hash, the one inline script that
starts it, hashed from the page itself so a template change cannot silently
break it. HSTS is sent only when ``SHELF_HSTS_SECONDS`` is set: local
development is plain http, and HSTS is a promise about the whole host.
"""

from __future__ import annotations

import base64
import hashlib
import re
from urllib.parse import urlsplit

from flask import Flask, Response, request

from catalog.config import Settings

EXTENSION_KEY = "shelf.security_headers"
DOCS_ENDPOINT = "api-docs.openapi_swagger_ui"
JSON_CSP = "default-src 'none'; frame-ancestors 'none'"
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)

STATIC_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def script_hashes(html: str) -> list[str]:
    """CSP source expressions for each inline ``<script>`` of ``html``."""
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in INLINE_SCRIPT.findall(html)
    ]


def docs_csp(cdn: str, html: str) -> str:
    scripts = " ".join([cdn, *script_hashes(html)])
    return (
        f"default-src 'none'; script-src {scripts}; "
        # Swagger UI sets inline style attributes from its scripts.
        f"style-src {cdn} 'unsafe-inline'; img-src 'self' data: {cdn}; font-src {cdn} data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def cdn_origin(swagger_ui_url: str | None) -> str:
    parts = urlsplit(swagger_ui_url or "")
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else "'self'"


def init_app(app: Flask, settings: Settings) -> None:
    hsts_seconds = settings.hsts_seconds
    cdn = cdn_origin(app.config.get("OPENAPI_SWAGGER_UI_URL"))
    headers = dict(STATIC_HEADERS)
    if hsts_seconds > 0:
        headers["Strict-Transport-Security"] = f"max-age={hsts_seconds}"

    json_headers = [*headers.items(), ("Content-Security-Policy", JSON_CSP)]
    app.extensions[EXTENSION_KEY] = json_headers  # for api.fast_path, which answers without Flask

    @app.after_request
    def add_security_headers(response: Response) -> Response:
        # No view sets these, so they are appended: Headers.update would rescan every header per name.
        if request.endpoint == DOCS_ENDPOINT and response.mimetype == "text/html":
            csp = docs_csp(cdn, response.get_data(as_text=True))
            response.headers.extend([*headers.items(), ("Content-Security-Policy", csp)])
        else:
            response.headers.extend(json_headers)
        return response
