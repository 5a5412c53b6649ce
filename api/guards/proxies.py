"""Which address is the client: trust ``X-Forwarded-For`` only from a known number of proxies.

``SHELF_TRUSTED_PROXIES`` is how many proxies (load balancer, ingress) stand
between clients and Shelf. With N > 0, Werkzeug's ProxyFix takes the client
address N hops back in ``X-Forwarded-For``; with 0 (the default) the header is
ignored, because anyone can send it and it would let a client pick its own
rate-limit budget. Logs and rate limits both read ``request.remote_addr``.
"""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from catalog.config import ConfigError, Settings


def init_app(app: Flask, settings: Settings) -> None:
    trusted_hops = settings.trusted_proxies
    if trusted_hops < 0:
        raise ConfigError(f"SHELF_TRUSTED_PROXIES must be 0 or more, got {trusted_hops}")
    if trusted_hops:
        # Only the client address is taken from proxies; nothing in Shelf reads the scheme or host.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=trusted_hops, x_proto=0)
