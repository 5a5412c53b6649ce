"""Fixtures for the cache tests: the real Redis at db 14, flushed around every test.

The correctness suites (modules that set ``STORES = ("redis", "cluster")``) run each test twice:
against that Redis and against a 3-master Redis Cluster the session starts on free ports
(``tests.redis_cluster``); ``redis_db``, ``backend`` and every region follow the ``store``
parameter. A test marked ``standalone_redis`` (one that watches the server with MONITOR) runs on
the single Redis only. The cluster runs are marked ``system``, so ``-m 'not system'`` leaves them out.

These tests need no PostgreSQL: ``clean_database`` overrides the autouse fixture of
tests/conftest.py (which truncates the app's database) with a no-op of the same name.
Set SHELF_TEST_CACHE_REDIS_URL to point them at another Redis or db; by default they use
db 14 of the server REDIS_URL names.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
import redis
from prometheus_client import CollectorRegistry

from cache.backends.cluster import backend_from_url, client_from_url, close_cluster_client
from cache.config import CacheConfig
from cache.metrics import PrometheusMetrics
from cache.region import Region
from catalog.resources import CatalogKeys, ttls
from tests.conftest import _with_path

from .support import FakeClock


def pytest_configure(config):
    config.addinivalue_line("markers", "standalone_redis: runs on the single Redis, not on the cluster")


def pytest_generate_tests(metafunc):
    if "store" not in metafunc.fixturenames:
        return
    stores = getattr(metafunc.module, "STORES", ("redis",))
    if metafunc.definition.get_closest_marker("standalone_redis"):
        stores = ("redis",)
    params = [pytest.param(s, marks=pytest.mark.system) if s == "cluster" else s for s in stores]
    metafunc.parametrize("store", params, indirect=True)


@pytest.fixture
def clean_database():
    """No-op: the cache layer never touches PostgreSQL."""


@pytest.fixture(scope="session")
def cache_redis_url(base_settings) -> str:
    """SHELF_TEST_CACHE_REDIS_URL, else db 14 of the Redis the rest of the suite uses (REDIS_URL)."""
    default = _with_path(base_settings.redis_url, "/14")
    return os.environ.get("SHELF_TEST_CACHE_REDIS_URL", default)


@pytest.fixture
def store(request) -> str:
    """``redis`` or ``cluster``: which server this run of the test uses (see ``pytest_generate_tests``)."""
    return request.param


@pytest.fixture
def store_url(store, cache_redis_url, request) -> str:
    if store == "cluster":
        return request.getfixturevalue("redis_cluster").url
    return cache_redis_url


@pytest.fixture
def redis_db(store, store_url) -> redis.Redis | redis.RedisCluster:
    client = client_from_url(store_url, 5.0)
    client.flushdb()  # on a cluster: every master
    yield client
    client.flushdb()
    if store == "cluster":
        close_cluster_client(client)
    else:
        client.close()


TEST_REDIS_TIMEOUT_MS = 1000
"""Generous on purpose: the shared test machine can stall Redis past the 50 ms production
default, which would turn a single-flight test into a timeout test. Fault tests set their own."""


@pytest.fixture
def backend(store, store_url, redis_db):
    backend = backend_from_url(store_url, timeout_ms=TEST_REDIS_TIMEOUT_MS)
    if store == "cluster":
        backend.client.connect()  # learn the slot map now, as a serving app has: tests time operations
    yield backend
    backend.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry) -> PrometheusMetrics:
    return PrometheusMetrics(registry)


@pytest.fixture
def make_region(backend, metrics, clock) -> Callable[..., Region]:
    """Regions over the real Redis with a fake clock, no jitter and, unless given, no XFetch."""

    def make(region_backend=None, random: Callable[[], float] = lambda: 1.0, refresher=None, **config):
        policy = CacheConfig(**{"jitter": 0.0, "ttls": ttls(), **config})
        chosen = region_backend or backend
        keys = CatalogKeys(policy.key_prefix)
        return Region(chosen, policy, metrics, clock=clock, random=random, refresher=refresher, keys=keys)

    return make


@pytest.fixture
def region(make_region) -> Region:
    return make_region()
