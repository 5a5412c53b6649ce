"""The app with its cache on a Redis Cluster: reads follow writes, and what a cluster cannot carry
(rq queues, rate-limit counters, the near cache) is refused at start-up with the setting to change."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from api import create_app
from cache.backends.cluster import ClusterBackend, close_cluster_client
from catalog.config import ConfigError, Settings
from tests.cache.support import closed_port
from tests.factories import make_category, make_product, token


@pytest.fixture
def cluster_app(make_app, redis_cluster, redis_url):
    """Cache on the cluster; queues and rate limits on the standalone test Redis."""
    flush = redis_cluster.client()
    flush.flushall()
    close_cluster_client(flush)
    return make_app(
        redis_url=redis_cluster.url,
        queue_redis_url=redis_url,
        cache_local_entries=0,
    )


@pytest.mark.system
def test_the_cache_runs_on_the_cluster(cluster_app, engine):
    product = make_product(engine, make_category(engine))
    client = cluster_app.test_client()
    assert client.get(f"/v1/products/{product.id}").headers["X-Cache"] == "MISS"
    assert client.get(f"/v1/products/{product.id}").headers["X-Cache"] == "HIT"
    assert isinstance(cluster_app.extensions["shelf.region"].backend, ClusterBackend)
    assert client.get("/readyz").status_code == 200


@pytest.mark.system
def test_reads_follow_writes_on_the_cluster(cluster_app, engine, auth):
    """Products and list pages of several scopes (so several slots and nodes): each write's
    invalidation reaches every page it changes, and a list page assembled from product entries
    (one MGET per slot) reads them all."""
    category, other = make_category(engine), make_category(engine)
    products = [make_product(engine, category, stock=5) for _ in range(4)]
    client = cluster_app.test_client()
    listings = [
        f"/v1/products?category={category.slug}&sort=price",
        f"/v1/products?category={category.slug}&in_stock=true",
        "/v1/products?sort=price",
    ]

    def stocks(path):
        return {item["id"]: item["stock"] for item in client.get(path).get_json()["items"]}

    for _ in range(2):  # MISS, then HIT
        for path in listings:
            assert set(stocks(path)) == {p.id for p in products}
    for stock, product in zip((4, 3, 0, 1), products, strict=True):
        path = f"/v1/products/{product.id}"
        client.get(path)
        assert client.patch(path, json={"stock": stock}, headers=auth).status_code == 200
        assert client.get(path).get_json()["stock"] == stock
        assert stocks(listings[0])[product.id] == stock
        assert (product.id in stocks(listings[1])) == (stock > 0)
    moved = products[0]
    client.patch(f"/v1/products/{moved.id}", json={"category": other.slug}, headers=auth)
    assert moved.id not in stocks(listings[0])
    assert set(stocks(f"/v1/products?category={other.slug}")) == {moved.id}
    body = {"sku": token("S"), "name": "New", "brand": "B", "price": "3.00", "category": category.slug}
    created = client.post("/v1/products", json=body, headers=auth).get_json()
    assert created["id"] in stocks(listings[0])


@pytest.mark.system
def test_a_write_while_a_node_is_unreachable_is_replayed_before_that_node_serves(
    cluster_app, redis_cluster, engine, auth
):
    """The node holding a product stops answering (SIGSTOP) while the product is written: the write
    succeeds and keeps its invalidation in the outbox; once the node answers again, the stale entry
    it still holds is never served (the replay runs as the new connection opens)."""
    product = make_product(engine, make_category(engine), stock=5)
    client, path = cluster_app.test_client(), f"/v1/products/{product.id}"
    client.get(path)
    assert client.get(path).headers["X-Cache"] == "HIT"
    entry = cluster_app.extensions["shelf.region"].keys.product(product.id).entry
    with redis_cluster.frozen(redis_cluster.owner_of(key_slot(entry.encode()))):
        assert client.patch(path, json={"stock": 0}, headers=auth).status_code == 200
        assert cluster_app.extensions["shelf.outbox"].pending() >= 1
    assert client.get(path).get_json()["stock"] == 0


def test_a_cluster_down_at_start_up_degrades_the_cache_instead_of_failing(make_app, engine, auth, redis_url):
    """redis-py's cluster client connects in its constructor; a cluster nobody answers for must
    still give an app that serves reads from PostgreSQL and takes writes."""
    app = make_app(
        redis_url=f"redis+cluster://127.0.0.1:{closed_port()}",
        queue_redis_url=redis_url,
        cache_local_entries=0,
    )
    client = app.test_client()
    category = make_category(engine)
    product = make_product(engine, category, stock=5)
    path = f"/v1/products/{product.id}"
    read = client.get(path)
    assert read.status_code == 200 and read.headers["X-Cache"] == "BYPASS"
    assert client.get(f"/v1/products?category={category.slug}").status_code == 200
    assert client.patch(path, json={"stock": 1}, headers=auth).status_code == 200
    assert client.get(path).get_json()["stock"] == 1
    assert client.get("/readyz").status_code == 503


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"queue_redis_url": "redis+cluster://127.0.0.1:7000"}, "SHELF_QUEUE_REDIS_URL"),
        ({"redis_url": "redis+cluster://127.0.0.1:7000"}, "SHELF_QUEUE_REDIS_URL"),
    ],
)
def test_a_cluster_where_one_server_is_needed_is_refused(settings, changes, named):
    with pytest.raises(ConfigError, match=named):
        settings.replace(**changes)


def test_the_near_cache_is_refused_on_a_cluster(settings, redis_url):
    cluster = {"redis_url": "redis+cluster://127.0.0.1:7000", "queue_redis_url": redis_url}
    with pytest.raises(ConfigError, match="SHELF_CACHE_LOCAL_ENTRIES=0"):
        settings.replace(**cluster)
    assert settings.replace(**cluster, rate_limits_enabled=False, cache_local_entries=0).redis_url


def test_the_refusal_happens_at_start_up_from_the_environment(redis_url):
    environ = {"REDIS_URL": "redis+cluster://127.0.0.1:7000", "SHELF_CACHE_LOCAL_ENTRIES": "0"}
    with pytest.raises(ConfigError, match="rq queues and rate-limit counters need a standalone Redis"):
        create_app(Settings.from_env(environ))
