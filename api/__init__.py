"""Shelf's app factory. The WSGI entry point is ``api:create_app()``.

Clients (engine, Redis) are built here from one Settings object, never at
import time, so tests and jobs can build an app against their own servers.
"""

from __future__ import annotations

from flask import Flask

from . import cli, db
from .config import Settings


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config["SHELF"] = settings
    db.init_app(app, settings)
    cli.init_app(app)
    return app
