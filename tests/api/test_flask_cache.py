"""Flask-Caching's decorators over Shelf's cache (api.flask_cache), against the test Redis: values
stored as tagged JSON (never pickled), one computation for concurrent misses, a stale entry served
while one caller refreshes it, fail-open when Redis is down, and the OpenAPI document through it."""

from __future__ import annotations

import threading
import time

import pytest
from flask import Response

from api.flask_cache import cache, decode_value, encode_value
from cache.entry import Payload
from catalog.representations import etag_of


def hits(app, event: str = "hits") -> float:
    registry = app.extensions["shelf.metrics_registry"]
    return registry.get_sample_value(f"shelf_cache_{event}_total", {"resource": "flask_cache"}) or 0.0


def stored_raw(app, redis_client, key: str) -> bytes | None:
    return redis_client.get(app.extensions["shelf.region"].keys.flask_cache(key).entry)


@pytest.mark.parametrize(
    "value",
    [
        {"a": [1, 2.5, None, "é"]},
        "text",
        7,
        b"\x00\xffraw",
        Response(b"body", status=201, headers={"X-A": "b"}),
    ],
    ids=["json", "str", "int", "bytes", "response"],
)
def test_values_round_trip_as_tagged_json(value):
    found, back = decode_value(encode_value(value))
    assert found
    if isinstance(value, Response):
        assert (back.status_code, back.get_data(), back.headers["X-A"]) == (201, b"body", "b")
    else:
        assert back == value


@pytest.mark.parametrize(
    "raw", [b"\x80\x04\x95pickle", b'{"t": "pickle", "v": "x"}', b'{"t": "bytes", "v": "%%"}']
)
def test_anything_else_read_back_is_not_a_value(raw):
    assert decode_value(raw) == (False, None)


def test_a_memoized_function_runs_once_and_is_stored_as_json(app, redis_client):
    calls = []

    @cache.memoize(timeout=60)
    def price(product_id: int) -> dict:
        calls.append(product_id)
        return {"id": product_id, "price": "9.50"}

    with app.app_context():
        assert price(3) == price(3) == {"id": 3, "price": "9.50"}
        assert calls == [3]
        key = price.make_cache_key(price.uncached, 3)
        raw = stored_raw(app, redis_client, key)
        assert raw is not None and b'"t":"json"' in raw and not raw.startswith(b"\x80")
        cache.delete_memoized(price, 3)
        assert price(3)["id"] == 3
        assert calls == [3, 3]


def test_a_plain_set_overwrites_and_delete_drops(app):
    with app.app_context():
        backend = cache.cache
        assert backend.set("k", "a") and backend.set("k", "b")
        assert backend.get("k") == "b" and backend.has("k")
        assert backend.delete("k")
        assert not backend.has("k")


def test_a_fill_computed_before_a_delete_is_not_stored(app):
    """Lease-checked fills: a delete between the miss and its set (a write's invalidation) voids it."""
    with app.app_context():
        backend = cache.cache
        assert backend.get("raced") is None  # a miss: this caller now holds the lease
        assert backend.delete("raced")
        assert backend.set("raced", "computed from data the write changed") is False
        assert not backend.has("raced")


def test_concurrent_misses_compute_once(app):
    """Single flight: the first miss takes the key's lease; the others wait for its fill."""
    calls, start = [], threading.Barrier(6)

    @cache.memoize(timeout=60)
    def slow(n: int) -> int:
        calls.append(n)
        time.sleep(0.1)
        return n * 2

    results = []

    def call():
        with app.app_context():
            start.wait()
            results.append(slow(21))

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [42] * 6
    assert calls == [21]


def test_a_stale_entry_is_served_while_one_caller_refreshes_it(app):
    with app.app_context():
        backend = cache.cache
        # Fresh for 1.8-2 s (TTLs are shortened by up to 10% at random), then stale until 3.6-4 s.
        assert backend.set("swr", "old", timeout=2)
        time.sleep(2.05)
        refresher = []
        thread = threading.Thread(target=lambda: refresher.append(backend.get("swr")))
        with app.app_context():
            thread.start()
            thread.join()
        assert refresher == [None]  # the first caller past the soft expiry holds the lease: it recomputes
        assert backend.get("swr") == "old"  # everyone else is served the stale value meanwhile
        assert hits(app, "stale") == 1


def test_a_value_without_a_json_form_is_served_not_stored(app, redis_client):
    calls = []

    @cache.cached(timeout=60, key_prefix="a-set")
    def view():
        calls.append(1)
        return {1, 2}

    with app.test_request_context("/"):
        assert view() == {1, 2}
        assert view() == {1, 2}
    assert len(calls) == 2
    key = app.extensions["shelf.region"].keys.flask_cache("a-set")
    assert redis_client.exists(key.entry, key.lease) == 0  # nothing stored, the lease given back


def test_a_tampered_entry_is_a_miss(app):
    """A well-formed cache entry whose body is not one of ours (a pickle, say) is never loaded."""
    region = app.extensions["shelf.region"]
    key = region.keys.flask_cache("tampered")
    body = b'{"t": "pickle", "v": "gASVAAAA"}'
    reservation = region.reserve([key])
    assert region.fill_many([(key, Payload(200, body, etag_of(body)))], reservation) == 1
    with app.app_context():
        assert cache.get("tampered") is None


def test_a_view_that_raises_gives_its_lease_back(app, redis_client):
    @app.get("/boom")
    @cache.cached(timeout=60)
    def boom():
        raise RuntimeError("boom")

    app.config["TESTING"] = False  # the error is a 500 answer, not raised into the test
    assert app.test_client().get("/boom").status_code == 500
    key = app.extensions["shelf.region"].keys.flask_cache("view//boom")
    assert redis_client.exists(key.lease) == 0  # the next caller computes at once, not after a wait


def test_redis_down_the_view_is_computed_and_answers(proxied, redis_proxy):
    calls = []

    @proxied.get("/answer")
    @cache.cached(timeout=60)
    def answer():
        calls.append(1)
        return {"ok": True}

    client = proxied.test_client()
    redis_proxy.down()
    for _ in range(8):  # past the breaker's threshold: later calls skip Redis
        response = client.get("/answer")
        assert response.status_code == 200 and response.get_json() == {"ok": True}
    assert len(calls) == 8
    assert proxied.extensions["shelf.region"].breaker.state.name == "OPEN"


def test_the_openapi_document_is_served_from_the_cache(app, client, redis_client):
    first = client.get("/openapi.json")
    assert first.status_code == 200 and first.content_type == "application/json"
    assert stored_raw(app, redis_client, "openapi.json") is not None
    before = hits(app)
    second = client.get("/openapi.json")
    assert second.get_data() == first.get_data()
    assert second.content_type == "application/json"
    assert hits(app) == before + 1
