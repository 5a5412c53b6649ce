"""The cache-aside layer as the API uses it: hits, invalidation on every write, races, outages.

Everything runs against the real PostgreSQL and Redis; Redis outages are a
TCP proxy in front of the real server that is cut and restored.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import pytest
import redis
from sqlalchemy import event, text

from api import create_app
from cache.api import CacheUnavailable
from catalog.services import products as product_service
from tests.cache.support import commands_sent
from tests.conftest import _with_path
from tests.factories import make_category, make_product, token


@contextmanager
def counting_sql(app):
    statements: list[str] = []
    engine = app.extensions["shelf.engine"]

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def wait_until(condition, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def metric(app, name: str, **labels: str) -> float:
    return app.extensions["shelf.metrics_registry"].get_sample_value(name, labels) or 0.0


@pytest.fixture
def category(engine):
    return make_category(engine)


def hit_and_count(app, client, path, redis_url):
    """One GET of ``path``: its response, the SQL it ran and the Redis commands it sent."""
    responses = []
    with counting_sql(app) as sql:
        commands = app_commands_sent(app, redis_url, lambda: responses.append(client.get(path)))
    return responses[0], sql, commands


def app_commands_sent(app, redis_url, action) -> list[str]:
    """The cache commands ``action`` sent: on the app's client, and on the near cache's own pool
    (its tracked reads) when there is one."""
    tracking = getattr(app.extensions["shelf.region"].backend, "_tracking", None)
    also = [redis.Redis(connection_pool=tracking)] if tracking is not None else []
    return commands_sent(app.extensions["shelf.cache_client"], redis_url, action, also=also)


def test_a_hit_costs_one_redis_round_trip_then_none_and_no_sql(app, client, engine, category, redis_url):
    product = make_product(engine, category)
    first = client.get(f"/v1/products/{product.id}")
    assert first.headers["X-Cache"] == "MISS"
    app.extensions["shelf.cache_client"].ping()  # the fill's own tracking push is in (see test_near)
    from_redis, sql, commands = hit_and_count(app, client, first.request.path, redis_url)
    assert from_redis.headers["X-Cache"] == "HIT" and sql == []
    # One round trip: the GET, and the request to track its key, sent in one packet.
    assert [c for c in commands if not c.startswith("CLIENT TRACKING")] == [
        "CLIENT CACHING YES",
        f"GET {app.extensions['shelf.region'].keys.product(product.id).entry}",
    ]
    local, sql, commands = hit_and_count(app, client, first.request.path, redis_url)
    assert local.headers["X-Cache"] == "HIT" and sql == [] and commands == []
    for hit in (from_redis, local):
        assert hit.get_data() == first.get_data()
        assert hit.headers["ETag"] == first.headers["ETag"]
    assert metric(app, "shelf_cache_local_hits_total", resource="product") == 1


def test_without_the_near_cache_a_hit_is_one_get(settings, engine, category, redis_client, redis_url):
    app = create_app(settings.replace(cache_local_entries=0))
    client = app.test_client()
    product = make_product(engine, category)
    assert client.get(f"/v1/products/{product.id}").headers["X-Cache"] == "MISS"
    for _ in range(2):
        hit, sql, commands = hit_and_count(app, client, f"/v1/products/{product.id}", redis_url)
        assert hit.headers["X-Cache"] == "HIT" and sql == []
        assert len(commands) == 1 and commands[0].startswith("GET ")
    app.extensions["shelf.engine"].dispose()


def test_a_write_in_one_process_is_seen_by_the_next_read_in_another(settings, engine, category, auth):
    """Two apps with their own pools and near caches, as two gunicorn workers (or machines)."""
    reader_app, writer_app = create_app(settings), create_app(settings)
    reader, writer = reader_app.test_client(), writer_app.test_client()
    product = make_product(engine, category, stock=5)
    path = f"/v1/products/{product.id}"
    listing = f"/v1/products?category={category.slug}"
    for _ in range(3):  # MISS, then from Redis, then from the reader's near cache
        assert reader.get(path).get_json()["stock"] == 5
        assert reader.get(listing).get_json()["items"][0]["stock"] == 5
    assert metric(reader_app, "shelf_cache_local_hits_total", resource="product") >= 1
    for stock in (4, 3, 2):
        assert writer.patch(path, json={"stock": stock}, headers=auth).status_code == 200
        assert reader.get(path).get_json()["stock"] == stock
        assert reader.get(listing).get_json()["items"][0]["stock"] == stock
    for app in (reader_app, writer_app):
        app.extensions["shelf.engine"].dispose()


def test_if_none_match_on_a_hit_is_304_without_sql(app, client, engine, category):
    product = make_product(engine, category)
    etag = client.get(f"/v1/products/{product.id}").headers["ETag"]
    with counting_sql(app) as sql:
        response = client.get(f"/v1/products/{product.id}", headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response.headers["X-Cache"] == "HIT"
    assert sql == []


def test_cache_headers(client, engine, category, settings):
    product = make_product(engine, category)
    response = client.get(f"/v1/products/{product.id}")
    assert response.headers["Cache-Control"] == (
        f"public, max-age={settings.http_max_age}, "
        f"stale-while-revalidate={settings.http_stale_while_revalidate}"
    )
    timing = response.headers["Server-Timing"]
    assert timing.startswith("cache;dur=") and ", db;dur=" in timing


def test_every_cached_read_is_a_hit_the_second_time(client, engine, category, auth):
    product = make_product(engine, category)
    client.post(
        f"/v1/products/{product.id}/reviews", json={"rating": 4, "title": "t", "author": "a"}, headers=auth
    )
    for path in (
        f"/v1/products/{product.id}",
        f"/v1/products?category={category.slug}&sort=price",
        f"/v1/products/{product.id}/reviews",
        "/v1/categories",
        f"/v1/categories/{category.slug}",
    ):
        assert client.get(path).headers["X-Cache"] == "MISS", path
        assert client.get(path).headers["X-Cache"] == "HIT", path


def test_equivalent_list_queries_share_one_entry(client, engine, category):
    make_product(engine, category)
    first = client.get(f"/v1/products?category={category.slug}&min_price=10&brand=Acme")
    assert first.headers["X-Cache"] == "MISS"
    same = client.get(
        f"/v1/products?brand=ACME&min_price=10.00&category={category.slug}&limit=20&sort=newest"
    )
    assert same.headers["X-Cache"] == "HIT"


def test_junk_parameters_never_reach_the_cache(client, redis_client):
    before = set(redis_client.keys("shelf:cache:*"))
    assert client.get("/v1/products?colour=red").status_code == 400
    assert client.get("/v1/products?cursor=forged.cursor").status_code == 400
    assert set(redis_client.keys("shelf:cache:*")) == before


# --- invalidation on writes -------------------------------------------------------------------


def test_a_write_is_visible_to_the_next_read(client, engine, category, auth):
    product = make_product(engine, category, stock=5)
    path = f"/v1/products/{product.id}"
    assert client.get(path).headers["X-Cache"] == "MISS"
    assert client.get(path).headers["X-Cache"] == "HIT"
    client.patch(path, json={"stock": 0}, headers=auth)
    after = client.get(path)
    assert after.get_json()["stock"] == 0
    assert after.headers["X-Cache"] == "MISS"


def test_lists_follow_creates_moves_and_deletes(client, engine, category, auth):
    other = make_category(engine)
    product = make_product(engine, category)

    def ids(slug):
        return [p["id"] for p in client.get(f"/v1/products?category={slug}").get_json()["items"]]

    assert ids(category.slug) == [product.id] and ids(other.slug) == []
    body = {"sku": token("S"), "name": "New", "brand": "B", "price": "3.00", "category": category.slug}
    created = client.post("/v1/products", json=body, headers=auth).get_json()
    assert set(ids(category.slug)) == {product.id, created["id"]}
    client.patch(f"/v1/products/{product.id}", json={"category": other.slug}, headers=auth)
    assert ids(category.slug) == [created["id"]] and ids(other.slug) == [product.id]
    client.delete(f"/v1/products/{created['id']}", headers=auth)
    assert ids(category.slug) == []
    assert len(client.get("/v1/products").get_json()["items"]) == 1


def test_a_parent_category_list_follows_a_change_in_its_child(client, engine, auth):
    parent = make_category(engine)
    child = make_category(engine, parent=parent)
    product = make_product(engine, child, stock=3)
    url = f"/v1/products?category={parent.slug}&in_stock=true"
    assert [p["id"] for p in client.get(url).get_json()["items"]] == [product.id]
    client.patch(f"/v1/products/{product.id}", json={"stock": 0}, headers=auth)
    assert client.get(url).get_json()["items"] == []


def test_reviews_refresh_the_rating_everywhere(client, engine, category, auth):
    product = make_product(engine, category)
    paths = [
        f"/v1/products/{product.id}",
        f"/v1/products/{product.id}/reviews",
        f"/v1/products?category={category.slug}&sort=-rating",
        f"/v1/categories/{category.slug}",
    ]
    for path in paths:
        client.get(path)
    client.post(
        f"/v1/products/{product.id}/reviews", json={"rating": 2, "title": "t", "author": "a"}, headers=auth
    )
    assert client.get(paths[0]).get_json()["rating"] == {"average": 2.0, "count": 1}
    assert len(client.get(paths[1]).get_json()["items"]) == 1
    assert client.get(paths[2]).get_json()["items"][0]["rating"]["count"] == 1
    assert client.get(paths[3]).get_json()["stats"]["review_count"] == 1


def test_category_renames_reach_the_tree_detail_and_product_bodies(client, engine, category, auth):
    product = make_product(engine, category)
    for path in ("/v1/categories", f"/v1/categories/{category.slug}", f"/v1/products/{product.id}"):
        client.get(path)
    new_slug = token("renamed")
    client.patch(f"/v1/categories/{category.slug}", json={"slug": new_slug, "name": "Renamed"}, headers=auth)
    tree = client.get("/v1/categories").get_json()["items"]
    assert new_slug in [node["slug"] for node in tree]
    assert client.get(f"/v1/categories/{category.slug}").status_code == 404
    assert client.get(f"/v1/products/{product.id}").get_json()["category"]["name"] == "Renamed"


def test_tree_counts_follow_new_products(client, engine, category, auth):
    def count():
        return next(n for n in client.get("/v1/categories").get_json()["items"] if n["slug"] == category.slug)

    assert count()["product_count"] == 0
    body = {"sku": token("S"), "name": "N", "brand": "B", "price": "1.00", "category": category.slug}
    client.post("/v1/products", json=body, headers=auth)
    assert count()["product_count"] == 1


# --- negative caching -------------------------------------------------------------------------


def test_unknown_ids_are_cached_as_404_and_forgotten_when_created(app, client, engine, category, auth):
    probe = make_product(engine, category)
    next_id = probe.id + 1
    assert client.get(f"/v1/products/{next_id}").headers["X-Cache"] == "MISS"
    with counting_sql(app) as sql:
        again = client.get(f"/v1/products/{next_id}")
    assert again.status_code == 404 and again.headers["X-Cache"] == "HIT"
    assert again.mimetype == "application/problem+json"
    assert sql == []
    body = {"sku": token("S"), "name": "N", "brand": "B", "price": "1.00", "category": category.slug}
    created = client.post("/v1/products", json=body, headers=auth).get_json()
    assert created["id"] == next_id
    assert client.get(f"/v1/products/{next_id}").status_code == 200


# --- races ------------------------------------------------------------------------------------


def test_a_slow_reader_cannot_store_what_a_write_made_stale(app, engine, category, auth, monkeypatch):
    """The reader misses and loads the old row; the write commits and invalidates; the reader's
    late fill is refused, so the next read sees the write."""
    product = make_product(engine, category, stock=5)
    loaded, written = threading.Event(), threading.Event()
    original = product_service.get_product

    def slow_for_the_reader(db, product_id, **kwargs):
        row = original(db, product_id, **kwargs)
        if threading.current_thread().name == "reader":
            loaded.set()
            assert written.wait(10)
        return row

    monkeypatch.setattr(product_service, "get_product", slow_for_the_reader)
    responses = {}
    reader = threading.Thread(
        target=lambda: responses.setdefault("read", app.test_client().get(f"/v1/products/{product.id}")),
        name="reader",
    )
    reader.start()
    assert loaded.wait(10)
    patched = app.test_client().patch(f"/v1/products/{product.id}", json={"stock": 0}, headers=auth)
    assert patched.status_code == 200
    written.set()
    reader.join(10)
    assert responses["read"].get_json()["stock"] == 5  # it answered with what it read: fine
    after = app.test_client().get(f"/v1/products/{product.id}")
    assert after.get_json()["stock"] == 0
    registry = app.extensions["shelf.metrics_registry"]
    assert registry.get_sample_value("shelf_cache_fill_rejected_total", {"resource": "product"}) == 1


def test_a_hundred_concurrent_misses_cause_one_database_fill(settings, engine, category, monkeypatch):
    app = create_app(settings.replace(cache_wait_ms=5000))
    product = make_product(engine, category)
    calls, lock = [], threading.Lock()
    original = product_service.get_product

    def counted(db, product_id, **kwargs):
        with lock:
            calls.append(product_id)
        threading.Event().wait(0.05)
        return original(db, product_id, **kwargs)

    monkeypatch.setattr(product_service, "get_product", counted)
    barrier, statuses = threading.Barrier(100), []

    def read():
        client = app.test_client()
        barrier.wait()
        statuses.append(client.get(f"/v1/products/{product.id}").status_code)

    threads = [threading.Thread(target=read) for _ in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert statuses == [200] * 100
    assert len(calls) == 1
    app.extensions["shelf.engine"].dispose()


# --- Redis outages ----------------------------------------------------------------------------


def outbox_rows(engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(text("SELECT count(*) FROM cache_outbox"))


def test_redis_down_reads_bypass_and_writes_succeed(proxied, redis_proxy, engine, category, auth):
    client = proxied.test_client()
    product = make_product(engine, category)
    redis_proxy.down()
    for _ in range(8):  # past the breaker's threshold: later reads skip Redis entirely
        response = client.get(f"/v1/products/{product.id}")
        assert response.status_code == 200 and response.headers["X-Cache"] == "BYPASS"
    assert proxied.extensions["shelf.region"].breaker.state.name == "OPEN"
    patched = client.patch(f"/v1/products/{product.id}", json={"stock": 7}, headers=auth)
    assert patched.status_code == 200
    assert client.get(f"/v1/products/{product.id}").get_json()["stock"] == 7
    assert outbox_rows(engine) == 1


def test_no_stale_entry_is_served_after_redis_comes_back(
    proxied, redis_proxy, engine, category, auth, settings, redis_url
):
    """Cached, then Redis becomes unreachable, a write commits (its invalidation cannot reach Redis),
    then Redis is back: neither this process nor a new one may read the old entry."""
    client = proxied.test_client()
    product = make_product(engine, category, stock=5)
    path = f"/v1/products/{product.id}"
    client.get(path)
    assert client.get(path).headers["X-Cache"] == "HIT"
    redis_proxy.down()
    assert client.patch(path, json={"stock": 1}, headers=auth).status_code == 200
    assert outbox_rows(engine) == 1
    redis_proxy.restore()
    other_process = create_app(settings.replace(redis_url=redis_url)).test_client()
    assert other_process.get(path).get_json()["stock"] == 1
    assert client.get(path).get_json()["stock"] == 1
    assert outbox_rows(engine) == 0


def fail_invalidations(monkeypatch, *regions) -> threading.Event:
    """Each region's ``invalidate`` raises CacheUnavailable while the returned event is set."""
    failing = threading.Event()
    failing.set()
    for region in regions:

        def invalidate(*args, _deliver=region.invalidate, **kwargs):
            if failing.is_set():
                raise CacheUnavailable("timed out")
            return _deliver(*args, **kwargs)

        monkeypatch.setattr(region, "invalidate", invalidate)
    return failing


def test_a_request_path_timeout_on_an_invalidation_is_retried_at_once_with_patience(
    app, client, engine, category, auth, monkeypatch
):
    """The request path's 100 ms timeout ran out (a busy machine, not an outage): the write tries again
    over the bulk pool before it answers, so nothing waits in the outbox for other processes to trip on."""
    product = make_product(engine, category, stock=5)
    path = f"/v1/products/{product.id}"
    client.get(path)
    fail_invalidations(monkeypatch, app.extensions["shelf.region"])
    assert client.patch(path, json={"stock": 2}, headers=auth).status_code == 200
    assert outbox_rows(engine) == 0 and not app.extensions["shelf.region"].reads_suspended
    other_process = create_app(app.config["SHELF"]).test_client()
    assert other_process.get(path).get_json()["stock"] == 2


def test_a_process_whose_invalidation_failed_reads_its_write_until_the_outbox_delivers_it(
    app, client, engine, category, auth, monkeypatch
):
    """Both tries failed, yet Redis answers reads: the process's near cache and other connections still
    hold the old entry, so its reads bypass them until the retry loop has delivered the row."""
    product = make_product(engine, category, stock=5)
    path = f"/v1/products/{product.id}"
    client.get(path)
    assert client.get(path).headers["X-Cache"] == "HIT"
    region = app.extensions["shelf.region"]
    failing = fail_invalidations(monkeypatch, region, app.extensions["shelf.bulk_region"])
    assert client.patch(path, json={"stock": 2}, headers=auth).status_code == 200
    reads = [client.get(path) for _ in range(2)]
    assert [(r.get_json()["stock"], r.headers["X-Cache"]) for r in reads] == [(2, "BYPASS")] * 2
    failing.clear()
    wait_until(lambda: not region.reads_suspended, 10)  # the retry loop delivered it (every second)
    assert outbox_rows(engine) == 0
    assert [client.get(path).headers["X-Cache"] for _ in range(2)] == ["MISS", "HIT"]
    assert client.get(path).get_json()["stock"] == 2


def test_an_invalidation_lost_with_its_process_is_replayed(app, client, engine, category, auth, monkeypatch):
    """The process dies between commit and invalidation: the outbox row outlives it."""
    product = make_product(engine, category, stock=5)
    path = f"/v1/products/{product.id}"
    client.get(path)
    outbox = app.extensions["shelf.outbox"]
    monkeypatch.setattr(outbox, "apply_committed", lambda row_id, invalidation: None)  # "dies" here
    client.patch(path, json={"stock": 2}, headers=auth)
    assert client.get(path).get_json()["stock"] == 5  # stale until the drain: this is what it fixes
    pending = outbox_rows(engine)  # the write's row, and its recompute's (eager jobs)
    assert pending >= 1
    assert outbox.drain() == pending
    assert client.get(path).get_json()["stock"] == 2
    assert outbox_rows(engine) == 0


def test_corrupt_entries_are_misses_not_errors(app, client, engine, category):
    product = make_product(engine, category)
    key = app.extensions["shelf.region"].keys.product(product.id)
    app.extensions["shelf.cache_client"].set(key.entry, b"\x80garbage")
    response = client.get(f"/v1/products/{product.id}")
    assert response.status_code == 200
    assert response.headers["X-Cache"] == "MISS"


def test_caching_off_runs_the_same_code_without_storing(settings, engine, category, redis_client):
    app = create_app(settings.replace(cache_enabled=False))
    client = app.test_client()
    product = make_product(engine, category)
    for _ in range(2):
        response = client.get(f"/v1/products/{product.id}")
        assert response.status_code == 200 and response.headers["X-Cache"] == "BYPASS"
    assert redis_client.keys("shelf:cache:*") == []
    app.extensions["shelf.engine"].dispose()


def test_database_down_serves_cached_entries_and_503s_the_rest(
    settings, engine, category, auth, database_url
):
    """Stale-if-error: PostgreSQL unreachable, what is cached is still served; the rest is a 503."""
    product = make_product(engine, category)
    app = create_app(settings)
    client = app.test_client()
    client.get(f"/v1/products/{product.id}")
    dead = create_app(settings.replace(database_url=_with_path(database_url, "/no_such_database")))
    dead_client = dead.test_client()
    cached = dead_client.get(f"/v1/products/{product.id}")
    assert cached.status_code == 200 and cached.headers["X-Cache"] == "HIT"
    assert dead_client.get(f"/v1/products/{product.id + 1}").status_code == 503
    written = dead_client.patch(f"/v1/products/{product.id}", json={"stock": 1}, headers=auth)
    assert written.status_code == 503
    assert written.mimetype == "application/problem+json"


def test_a_stale_entry_is_served_at_once_and_refreshed_behind_from_the_database(make_app, engine, category):
    """The background refresh runs the route's own creator, with a session of its own (no request)."""
    ttls = {"product": (3600.0, 0.3), "reviews": (3600.0, 0.3)}
    app = make_app(cache_ttls=ttls, cache_local_entries=0, cache_redis_timeout_ms=5000)  # no bypass
    client, product = app.test_client(), make_product(engine, category, name="Old name")
    paths = (f"/v1/products/{product.id}", f"/v1/products/{product.id}/reviews")
    assert [client.get(path).headers["X-Cache"] for path in paths] == ["MISS", "MISS"]
    with engine.begin() as conn:  # behind the cache's back: only the soft TTL can catch this
        conn.execute(text("UPDATE products SET name = 'New name' WHERE id = :id"), {"id": product.id})
        conn.execute(
            text("INSERT INTO reviews (product_id, rating, title, author) VALUES (:id, 5, 'Late', 'x')"),
            {"id": product.id},
        )
    threading.Event().wait(0.4)
    stale = [client.get(path) for path in paths]
    assert [r.headers["X-Cache"] for r in stale] == ["STALE", "STALE"]
    assert (stale[0].json["name"], stale[1].json["items"]) == ("Old name", [])
    app.extensions["shelf.region"].refresher.join()
    fresh = [client.get(path) for path in paths]
    assert [r.headers["X-Cache"] for r in fresh] == ["HIT", "HIT"]
    assert (fresh[0].json["name"], [i["title"] for i in fresh[1].json["items"]]) == ("New name", ["Late"])
    assert metric(app, "shelf_cache_refreshes_total", resource="product") == 1
