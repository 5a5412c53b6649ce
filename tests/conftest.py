"""Shared fixtures: a throwaway PostgreSQL database and Redis db per test session.

Tests run against the real servers named by DATABASE_URL and REDIS_URL (the
machine's local ones by default). The session creates its own database
``shelf_test_<random>``, migrates it to head once, and empties every table
before each test; Redis tests use db ``SHELF_TEST_REDIS_DB`` (15 by default),
flushed before each test. Nobody else's data is touched. ``make_app`` builds apps
with their own settings (each with a random rate-limit key prefix), and ``log_output``
captures what they log. ``own_redis`` is a Redis server of the test's own (the embedded
valkey-server of scripts/dev_services.py, on a free port), for tests that stop and restart it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import os
import secrets
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from sqlalchemy import create_engine, text

from api import create_app
from api.cli import upgrade_database
from api.guards.rate_limits import EXTENSION_KEY
from catalog.config import Settings
from catalog.logs import JsonFormatter
from catalog.models import Base
from tests.cache.support import FakeClock
from tests.netproxy import TcpProxy
from tests.redis_cluster import start_cluster

TEST_TOKEN = "test-token-" + secrets.token_hex(8)


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=path))


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    return Settings.from_env({**os.environ, "SHELF_ENV": "test"})


@pytest.fixture(scope="session")
def database_url(base_settings):
    name = "shelf_test_" + secrets.token_hex(4)
    admin = create_engine(_with_path(base_settings.database_url, "/postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = _with_path(base_settings.database_url, "/" + name)
    upgrade_database(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def redis_url(base_settings):
    db_index = os.environ.get("SHELF_TEST_REDIS_DB", "15")
    return _with_path(base_settings.redis_url, "/" + db_index)


@pytest.fixture(scope="session")
def settings(base_settings, database_url, redis_url) -> Settings:
    return base_settings.replace(
        database_url=database_url,
        redis_url=redis_url,
        api_tokens={"tests": TEST_TOKEN},
        # Jobs run inline at enqueue, so a write's aggregates are done when it returns; the jobs'
        # own tests use a real queue and an in-process worker instead.
        jobs_eager=True,
        recompute_debounce_seconds=0,
        warm_on_start=False,
        secret_key="test-secret-" + secrets.token_hex(8),
        # View counts reach Redis only when a test flushes or closes an app: the flusher thread of
        # an app a test left open would land them in whatever a later test keeps in that Redis db
        # (a popular warm then warms an earlier test's products).
        popularity_flush_seconds=3600,
    )


@pytest.fixture(scope="session")
def engine(database_url):
    eng = create_engine(database_url)
    yield eng
    eng.dispose()


@pytest.fixture(autouse=True)
def clean_database(engine):
    """Empty every table, children first. DELETE rather than TRUNCATE: on the few rows a test leaves
    it takes a few milliseconds where TRUNCATE takes a tenth of a second (new files per table)."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE categories SET parent_id = NULL WHERE parent_id IS NOT NULL"))
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture(scope="session")
def redis_cluster():
    """A 3-master Redis Cluster of the session's own, on free ports (``tests.redis_cluster``)."""
    cluster = start_cluster()
    yield cluster
    cluster.stop()


@pytest.fixture
def redis_client(redis_url):
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def app(settings, redis_client):
    app = create_app(settings)
    app.config["TESTING"] = True
    yield app
    close(app)


def close(app) -> None:
    """Stop the app's popularity flusher, sending what it holds (it would land in a later test's Redis
    db a few seconds on), and close its database pool."""
    with contextlib.suppress(Exception):  # a test that left its Redis down
        app.extensions["shelf.views"].close()
    if limiter := app.extensions.get(EXTENSION_KEY):
        limiter.close()
    app.extensions["shelf.engine"].dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def auth():
    return {"Authorization": f"Bearer {TEST_TOKEN}"}


@pytest.fixture
def redis_proxy(redis_url):
    """A TCP proxy in front of the test Redis, to cut (``down()``) or slow (``delay``) it."""
    parts = urlsplit(redis_url)
    proxy = TcpProxy((parts.hostname, parts.port or 6379))
    yield proxy
    proxy.close()


@pytest.fixture
def proxied(settings, redis_url, redis_proxy):
    """An app whose Redis (cache, queue, rate limits) is reached through ``redis_proxy``."""
    url = urlsplit(redis_url)._replace(netloc=f"127.0.0.1:{redis_proxy.port}").geturl()
    app = create_app(settings.replace(redis_url=url))
    yield app
    app.extensions["shelf.engine"].dispose()


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
        close(app)


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


def load_dev_services():
    """scripts/dev_services.py as a module: its embedded PostgreSQL and Valkey servers."""
    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("dev_services", root / "scripts" / "dev_services.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("dev_services", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def own_redis():
    """A Redis only this test uses: ``.stop()`` it, ``.ensure_running()`` starts it again on its port."""
    root = Path(tempfile.mkdtemp(prefix="shelf-own-redis-"))
    server = load_dev_services().Valkey(root)
    server.ensure_running()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)
