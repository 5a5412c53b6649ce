"""The guard rails around every request, wired in one call so their order is written down once.

Proxies first (they decide the client address everything else sees), then the
rate limiter (an abusive client is turned away before its body is parsed),
then the input checks, and the headers every response leaves with.
"""

from __future__ import annotations

from flask import Flask

from catalog.config import Settings

from . import cors, input_guards, proxies, rate_limits, security_headers


def init_app(app: Flask, settings: Settings) -> None:
    proxies.init_app(app, settings.trusted_proxies)
    rate_limits.init_app(app, settings)
    input_guards.init_app(app)
    security_headers.init_app(app, settings.hsts_seconds)
    cors.init_app(app, settings.cors_origins)
