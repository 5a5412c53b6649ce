"""The guards around every request: one module per concern, registered in one loop.

Each module's ``init_app(app, settings)`` installs its hooks or middleware; ``GUARDS`` is the order,
written down once. Proxies first (they decide the client address everything else sees), then the
request line, body size and content type, then the rate limiter (an abusive client is turned away
before its body is parsed), then the input checks, and the headers every response leaves with.
``auth`` has nothing to install: its ``require_token`` decorates the views that need a token.
"""

from __future__ import annotations

from flask import Flask

from catalog.config import Settings

from . import cors, input_guards, proxies, rate_limits, request_guards, security_headers

GUARDS = (proxies, request_guards, rate_limits, input_guards, security_headers, cors)


def init_app(app: Flask, settings: Settings) -> None:
    for guard in GUARDS:
        guard.init_app(app, settings)
