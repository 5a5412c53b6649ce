"""The cluster backend while slots move: a resharded slot is followed (MOVED) by reads, fills,
scripts, invalidation pipelines and per-slot MGETs, on a Redis Cluster of the test's own."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from cache.backends.cluster import ClusterBackend
from cache.config import CacheConfig
from cache.entry import Payload
from cache.region import Region, State
from catalog.resources import CatalogKeys, ttls
from tests.redis_cluster import start_cluster

from .conftest import TEST_REDIS_TIMEOUT_MS

pytestmark = pytest.mark.system


@pytest.fixture
def own_cluster():
    cluster = start_cluster()
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster_region(own_cluster):
    backend = ClusterBackend.from_url(own_cluster.url, timeout_ms=TEST_REDIS_TIMEOUT_MS)
    yield Region(backend, CacheConfig(ttls=ttls()), keys=CatalogKeys())
    backend.close()


def body(text: bytes, *tags: str):
    return lambda: Payload(200, text, '"e"', tags)


def test_a_resharded_slot_keeps_every_guarantee(own_cluster, cluster_region):
    region, keys = cluster_region, cluster_region.keys
    products = [keys.product(n) for n in range(6)]
    page = keys.product_list({"page": 1}, "all", "price")
    for key in products:
        region.get_or_create(key, body(b"old"))
    region.get_or_create(page, body(b"page", "p:1"))
    for entry in (products[1].entry, products[2].entry, page.entry):
        slot = key_slot(entry.encode())
        target = (own_cluster.owner_of(slot) + 1) % 3
        own_cluster.move_slot(slot, target)
        assert own_cluster.owner_of(slot) == target

    assert all(e is not None and e.body == b"old" for e in region.get_many(products))
    assert region.get_or_create(page, body(b"unused")).state is State.HIT
    region.invalidate([products[1]], [keys.list_guard("all", "price")], [keys.list_tag("all", "p:1")])
    assert region.get_or_create(products[1], body(b"new")).state is State.MISS
    assert region.get_or_create(products[1], body(b"unused")).entry.body == b"new"
    assert region.get_or_create(page, body(b"page 2", "p:1")).state is State.MISS
    assert region.get_or_create(page, body(b"unused")).entry.body == b"page 2"
    region.invalidate([products[2]])
    reservation = region.reserve([products[2]])
    assert region.fill_many([(products[2], Payload(200, b"warmed", '"e"'))], reservation) == 1
    assert region.get_or_create(products[2], body(b"unused")).entry.body == b"warmed"
