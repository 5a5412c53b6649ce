"""Shared fixtures: a throwaway PostgreSQL database and Redis db per test session.

Tests run against the real servers named by DATABASE_URL and REDIS_URL (the
machine's local ones by default). The session creates its own database
``shelf_test_<random>``, migrates it to head once, and empties every table
before each test; Redis tests use db ``SHELF_TEST_REDIS_DB`` (15 by default),
flushed before each test. Nobody else's data is touched.
"""

from __future__ import annotations

import os
import secrets
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from sqlalchemy import create_engine, text

from api import create_app
from api.cli import upgrade_database
from api.config import Settings
from api.models import Base
from tests.netproxy import TcpProxy

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
    )


@pytest.fixture(scope="session")
def engine(database_url):
    eng = create_engine(database_url)
    yield eng
    eng.dispose()


@pytest.fixture(autouse=True)
def clean_database(engine):
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} CASCADE"))


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
