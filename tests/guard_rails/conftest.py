"""Fixtures for the guard-rail tests: apps built with their own settings, and captured logs.

Each app gets a random rate-limit key prefix in the test Redis db, so no test
sees another's counters even before the db is flushed.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
import socket

import pytest

from api import create_app
from api.rate_limits import EXTENSION_KEY
from api.request_log import JsonFormatter
from tests.cache.support import FakeClock


@pytest.fixture
def make_app(settings, redis_client):
    """``make_app(**settings_changes)``: an app over the test servers, disposed at teardown."""
    apps = []

    def make(**changes):
        changes.setdefault("rate_limit_prefix", "test-limits-" + secrets.token_hex(4))
        app = create_app(settings.replace(**changes))
        if limiter := app.extensions.get(EXTENSION_KEY):
            # Windows are fixed clock minutes: a real clock crossing one between two requests of a
            # test would start a fresh budget. Tests that move time replace this clock.
            limiter.clock = FakeClock()
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["shelf.engine"].dispose()


@pytest.fixture
def unused_port():
    """A local port nothing listens on: a real closed port, so connecting fails at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def log_output():
    """Everything logged while the test runs (Shelf's loggers, libraries' and the root), as text."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    loggers = [logging.getLogger(), logging.getLogger("shelf"), logging.getLogger("flask-limiter")]
    previous = [(logger, logger.level) for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield stream.getvalue
    for logger, level in previous:
        logger.removeHandler(handler)
        logger.setLevel(level)


def log_records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]
