"""List pages as the API serves them: ids assembled from product entries, dropped only by the
writes that can move them, refused fills, and reads that start after a write's 2xx."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from catalog.services import products as product_service
from tests.api.test_caching import app_commands_sent, counting_sql, metric
from tests.factories import make_category, make_product


@pytest.fixture
def category(engine):
    return make_category(engine)


@pytest.fixture
def priced(engine, category):
    """Ten products at 1.00, 2.00 ... 10.00."""
    return [make_product(engine, category, price=Decimal(n)) for n in range(1, 11)]


def first_page(client, category, **params):
    query = "&".join(f"{k}={v}" for k, v in {"category": category.slug, "limit": 3, **params}.items())
    return client.get(f"/v1/products?{query}")


def test_a_change_lists_do_not_order_by_keeps_the_page_and_shows_the_new_value(
    client, category, priced, auth
):
    first_page(client, category, sort="price")
    product = priced[0]
    patched = client.patch(f"/v1/products/{product.id}", json={"description": "new words"}, headers=auth)
    assert patched.status_code == 200
    page = first_page(client, category, sort="price")
    assert page.headers["X-Cache"] == "HIT"
    assert page.get_json()["items"][0]["description"] == "new words"
    assert page.headers["ETag"] != patched.headers["ETag"]


def test_a_price_change_outside_a_page_keeps_it_and_one_inside_drops_it(client, category, priced, auth):
    assert first_page(client, category, sort="price").headers["X-Cache"] == "MISS"
    dear = priced[-1]
    client.patch(f"/v1/products/{dear.id}", json={"price": "11.00"}, headers=auth)
    kept = first_page(client, category, sort="price")
    assert kept.headers["X-Cache"] == "HIT"
    client.patch(f"/v1/products/{dear.id}", json={"price": "0.50"}, headers=auth)
    moved = first_page(client, category, sort="price")
    assert moved.headers["X-Cache"] == "MISS"
    assert [item["id"] for item in moved.get_json()["items"]] == [dear.id, priced[0].id, priced[1].id]


def test_the_row_after_a_page_is_part_of_it_so_its_last_page_is_seen(client, category, priced, auth):
    page = client.get(f"/v1/products?category={category.slug}&sort=price&limit=9").get_json()
    assert page["next_cursor"] is not None
    assert client.delete(f"/v1/products/{priced[-1].id}", headers=auth).status_code == 204
    again = client.get(f"/v1/products?category={category.slug}&sort=price&limit=9")
    assert again.headers["X-Cache"] == "MISS" and again.get_json()["next_cursor"] is None


def test_a_page_behind_a_cursor_survives_a_new_product(client, engine, category, auth):
    """Newest first, a new product enters at the head: a page anchored behind a cursor, over older
    creation hours, keeps its rows."""
    now = datetime.now(UTC)
    for days in range(1, 8):
        make_product(engine, category, created_at=now - timedelta(days=days))
    first = first_page(client, category, sort="newest").get_json()
    second_path = f"/v1/products?category={category.slug}&limit=3&sort=newest&cursor={first['next_cursor']}"
    client.get(second_path)
    body = {
        "sku": "SKU-NEW-1",
        "name": "Brand new",
        "brand": "Acme",
        "price": "5.00",
        "category": category.slug,
    }
    assert client.post("/v1/products", json=body, headers=auth).status_code == 201
    assert first_page(client, category, sort="newest").get_json()["items"][0]["name"] == "Brand new"
    assert client.get(second_path).headers["X-Cache"] == "HIT"


def test_a_page_hit_costs_no_sql_and_no_round_trip_once_its_products_are_near(
    app, client, category, priced, redis_url
):
    path = f"/v1/products?category={category.slug}&limit=3&sort=price"
    miss = client.get(path)
    for item in miss.get_json()["items"]:
        client.get(f"/v1/products/{item['id']}")
        client.get(f"/v1/products/{item['id']}")  # now in the near cache
    client.get(path)  # the page's own entry, from Redis into the near cache
    app.extensions["shelf.cache_client"].ping()
    responses = []
    with counting_sql(app) as sql:
        commands = app_commands_sent(app, redis_url, lambda: responses.append(client.get(path)))
    assert responses[0].headers["X-Cache"] == "HIT" and sql == [] and commands == []
    assert responses[0].get_data() == miss.get_data() and responses[0].headers["ETag"] == miss.headers["ETag"]


def test_without_the_near_cache_a_page_hit_is_one_get_and_one_mget(make_app, category, priced, redis_url):
    app = make_app(cache_local_entries=0)
    client = app.test_client()
    path = f"/v1/products?category={category.slug}&limit=3&sort=price"
    miss = client.get(path)
    client.get(path)  # the first hit stores the products' entries it had to read
    responses = []
    with counting_sql(app) as sql:
        commands = app_commands_sent(app, redis_url, lambda: responses.append(client.get(path)))
    assert responses[0].headers["X-Cache"] == "HIT" and sql == []
    assert [command.split()[0] for command in commands] == ["GET", "MGET"]
    assert responses[0].get_data() == miss.get_data()


def test_a_slow_page_filler_cannot_store_a_page_a_write_moved(
    app, engine, category, priced, auth, monkeypatch
):
    """The reader misses and reads the old order; a price write commits and drops the page's
    dependencies; the reader's fill is refused by the guard, so the next read sees the write."""
    read, written = threading.Event(), threading.Event()
    original = product_service.list_products

    def slow_for_the_reader(db, query, after):
        page = original(db, query, after)
        if threading.current_thread().name == "reader":
            read.set()
            assert written.wait(10)
        return page

    monkeypatch.setattr(product_service, "list_products", slow_for_the_reader)
    reader = threading.Thread(
        target=lambda: first_page(app.test_client(), category, sort="price"), name="reader"
    )
    reader.start()
    assert read.wait(10)
    cheapest = app.test_client().patch(f"/v1/products/{priced[-1].id}", json={"price": "0.10"}, headers=auth)
    assert cheapest.status_code == 200
    written.set()
    reader.join(10)
    assert first_page(app.test_client(), category, sort="price").get_json()["items"][0]["id"] == priced[-1].id
    assert metric(app, "shelf_cache_fill_rejected_total", resource="product_list") == 1


def test_product_writes_keep_reviews_pages_and_the_tree_until_what_they_show_changes(
    client, category, priced, auth
):
    product = priced[0]
    client.patch(f"/v1/products/{product.id}", json={"price": "3.00"}, headers=auth)  # stats computed
    client.get(f"/v1/products/{product.id}/reviews")
    client.get("/v1/categories")
    client.patch(f"/v1/products/{product.id}", json={"price": "3.33", "stock": 7}, headers=auth)
    assert client.get(f"/v1/products/{product.id}/reviews").headers["X-Cache"] == "HIT"
    assert client.get("/v1/categories").headers["X-Cache"] == "HIT"
    review = {"rating": 4, "title": "Good", "author": "Ann"}
    assert client.post(f"/v1/products/{product.id}/reviews", json=review, headers=auth).status_code == 201
    assert client.get(f"/v1/products/{product.id}/reviews").get_json()["items"][0]["title"] == "Good"
    client.patch(f"/v1/products/{product.id}", json={"is_active": False}, headers=auth)
    assert client.get(f"/v1/products/{product.id}/reviews").status_code == 404
    node = next(n for n in client.get("/v1/categories").get_json()["items"] if n["slug"] == category.slug)
    assert node["product_count"] == len(priced) - 1


@pytest.mark.system
def test_reads_that_start_after_a_write_see_it_while_readers_keep_pages_hot(make_app, category, priced, auth):
    """Two cached apps (two processes' near caches) are read hard by background threads while one
    writer moves prices; after each 2xx, each app's pages equal those of an app with the cache off."""
    writer_app, reader_app = make_app(rate_limits_enabled=False), make_app(rate_limits_enabled=False)
    truth = make_app(rate_limits_enabled=False, cache_enabled=False).test_client()
    paths = [
        f"/v1/products?category={category.slug}&limit=3&sort={sort}"
        for sort in ("price", "-price", "newest", "name")
    ] + [
        "/v1/products?limit=4&sort=price",
        f"/v1/products?category={category.slug}&limit=2&sort=price&in_stock=true",
    ]
    stop, failures = threading.Event(), []

    def keep_hot(app):
        client = app.test_client()
        while not stop.is_set():
            for path in paths:
                if client.get(path).status_code != 200:
                    failures.append(path)

    readers = [threading.Thread(target=keep_hot, args=(app,)) for app in (writer_app, reader_app)]
    for thread in readers:
        thread.start()
    rng, stale = random.Random(7), []
    try:
        writer = writer_app.test_client()
        for _ in range(40):
            product = rng.choice(priced)
            price = f"{rng.randint(50, 1200) / 100:.2f}"
            assert (
                writer.patch(f"/v1/products/{product.id}", json={"price": price}, headers=auth).status_code
                == 200
            )
            expected = {path: truth.get(path).get_data() for path in paths}
            for app in (writer_app, reader_app):
                client = app.test_client()
                stale += [path for path in paths if client.get(path).get_data() != expected[path]]
    finally:
        stop.set()
        for thread in readers:
            thread.join(10)
    assert stale == [] and failures == []
    assert metric(reader_app, "shelf_cache_hits_total", resource="product_list") > 0
