"""Shelf behind a real Varnish (``varnish/shelf.vcl``): tags, purge on write, conditional requests,
and an edge that is down or slow (``catalog.edge_tags``, ``catalog.edge_purge``, ``loadtest.varnish``)."""

from __future__ import annotations

import random
import threading
import time
from urllib.parse import urlsplit

import pytest
from ruamel.yaml import YAML
from sqlalchemy import func, select, text

from catalog.config import ConfigError, Settings
from catalog.models import EdgePurge
from loadtest import varnish
from tests.edge_support import HTTP, ShelfHttp, request, wait_until
from tests.factories import make_category, make_product
from tests.netproxy import TcpProxy

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(not varnish.available(), reason="varnishd not installed (.ci/run installs it)"),
]


@pytest.fixture
def shelf_http():
    server = ShelfHttp()
    yield server
    server.close()


@pytest.fixture
def edge(shelf_http):
    with varnish.edge(shelf_http.port) as running:
        yield running
    HTTP.clear()  # the connections to this Varnish, closed rather than left to the collector
    purger = getattr(shelf_http.app, "extensions", {}).get("shelf.edge")
    if purger is not None:
        purger.http.clear()


@pytest.fixture
def edge_app(make_app, shelf_http, edge):
    """Shelf served on ``shelf_http``, purging ``edge`` on every write."""
    shelf_http.app = make_app(edge_purge_urls=(edge.url,), edge_purge_timeout_ms=2000)
    return shelf_http.app


def pending_rows(engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(EdgePurge))


def test_a_product_read_is_cached_by_the_edge_and_a_write_purges_it(edge_app, edge, engine, auth):
    product = make_product(engine, make_category(engine), description="before")
    url = f"{edge.url}/v1/products/{product.id}"

    first, second = request("GET", url), request("GET", url)
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")
    assert "xkey" not in second.headers  # the edge keeps its tags to itself

    patched = edge_app.test_client().patch(
        f"/v1/products/{product.id}", json={"description": "after"}, headers=auth
    )
    assert patched.status_code == 200
    assert patched.headers["X-Edge-Purge"] == "done"
    after = request("GET", url)
    assert after.headers["X-Cache"] == "MISS"
    assert after.json()["description"] == "after"
    assert pending_rows(engine) == 0


def test_cacheable_responses_carry_the_hash_tags_of_what_they_show(make_app, engine):
    category = make_category(engine)
    products = [make_product(engine, category) for _ in range(2)]
    client = make_app().test_client()

    for _ in range(2):  # a miss through Flask, then a hit through the fast path
        assert client.get(f"/v1/products/{products[0].id}").headers["xkey"] == f"p:{products[0].id}"
    page = client.get(f"/v1/products?category={category.slug}&sort=name")
    tags = page.headers["xkey"].split()
    assert tags[0] == f"l:{category.slug}"
    assert sorted(tags[1:]) == sorted(f"p:{p.id}" for p in products)
    assert client.get(f"/v1/categories/{category.slug}").headers["xkey"] == f"c:{category.slug}"
    assert "xkey" not in client.get("/v1/products/999999").headers  # a 404 is not the edge's to keep


def test_the_tag_header_is_chosen_by_a_setting(make_app, engine):
    product = make_product(engine, make_category(engine))
    surrogate = make_app(edge_tag_header="Surrogate-Key").test_client().get(f"/v1/products/{product.id}")
    assert surrogate.headers["Surrogate-Key"] == f"p:{product.id}"
    assert "xkey" not in surrogate.headers
    untagged = make_app(edge_tag_header="none").test_client().get(f"/v1/products/{product.id}")
    assert "xkey" not in untagged.headers and "Surrogate-Key" not in untagged.headers


def test_if_none_match_is_answered_by_the_edge(edge_app, edge, engine):
    product = make_product(engine, make_category(engine))
    url = f"{edge.url}/v1/products/{product.id}"
    etag = request("GET", url).headers["ETag"]

    conditional = request("GET", url, headers={"If-None-Match": etag})
    assert conditional.status == 304
    assert conditional.headers["X-Cache"] == "HIT"
    assert conditional.headers["ETag"] == etag


def test_requests_with_authorization_pass_the_edge(edge_app, edge, engine, auth):
    product = make_product(engine, make_category(engine))
    url = f"{edge.url}/v1/products/{product.id}"
    request("GET", url)
    assert request("GET", url, headers=auth).headers["X-Cache"] == "PASS"


def test_a_list_page_is_purged_when_an_item_on_it_changes(edge_app, edge, engine, auth):
    category = make_category(engine)
    product = make_product(engine, category, description="before")
    url = f"{edge.url}/v1/products?category={category.slug}"
    request("GET", url)
    assert request("GET", url).headers["X-Cache"] == "HIT"

    edge_app.test_client().patch(f"/v1/products/{product.id}", json={"description": "after"}, headers=auth)
    page = request("GET", url)
    assert page.headers["X-Cache"] == "MISS"
    assert page.json()["items"][0]["description"] == "after"


def test_only_the_configured_purgers_may_purge(shelf_http):
    with varnish.edge(shelf_http.port, purgers=("192.0.2.1",)) as stranger_edge:
        refused = request("PURGE", stranger_edge.url + "/", headers={"xkey-purge": "p:1"})
    assert refused.status == 403


@pytest.fixture
def edge_proxy(edge):
    """A TCP proxy in front of the edge: purges go through it, reads go to the edge directly."""
    proxy = TcpProxy(("127.0.0.1", int(edge.url.rsplit(":", 1)[1])))
    yield proxy
    proxy.close()


@pytest.fixture
def proxied_edge_app(make_app, shelf_http, edge_proxy):
    shelf_http.app = make_app(
        edge_purge_urls=(f"http://127.0.0.1:{edge_proxy.port}",), edge_purge_timeout_ms=TIMEOUT_MS
    )
    return shelf_http.app


TIMEOUT_MS = 300
BOUND_SECONDS = 1.5
"""What a write may take beyond the purge timeout on this shared, noisy machine."""


def patch_timed(app, product_id: int, auth, **changes):
    started = time.monotonic()
    response = app.test_client().patch(f"/v1/products/{product_id}", json=changes, headers=auth)
    return response, time.monotonic() - started


@pytest.mark.parametrize("fault", ["down", "slow"])
def test_an_edge_down_or_slow_leaves_the_purge_pending_and_the_outbox_retries(
    fault, proxied_edge_app, edge, edge_proxy, engine, auth
):
    product = make_product(engine, make_category(engine), description="before")
    url = f"{edge.url}/v1/products/{product.id}"
    request("GET", url)
    if fault == "down":
        edge_proxy.down()
    else:
        edge_proxy.delay = 5.0

    response, took = patch_timed(proxied_edge_app, product.id, auth, description="after")
    assert response.status_code == 200
    assert response.headers["X-Edge-Purge"] == "pending"
    assert took < TIMEOUT_MS / 1000 + BOUND_SECONDS
    assert pending_rows(engine) >= 1  # the write's, and its category recompute's
    if fault == "down":  # what the README says a client may see until the retry gets through
        assert request("GET", url).json()["description"] == "before"

    edge_proxy.delay = 0.0
    edge_proxy.restore()
    assert wait_until(lambda: pending_rows(engine) == 0, timeout=15)
    assert request("GET", url).json()["description"] == "after"


def test_a_drain_sends_purges_a_dead_process_left_behind(edge_app, edge, engine):
    product = make_product(engine, make_category(engine), description="before")
    url = f"{edge.url}/v1/products/{product.id}"
    request("GET", url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE products SET description = 'after' WHERE id = :id"), {"id": product.id})
        retired = EdgePurge.__table__.insert().values(edge="http://127.0.0.1:9", tags=[f"p:{product.id}"])
        conn.execute(retired)  # an edge no longer configured: first in line, and never acknowledged
        conn.execute(EdgePurge.__table__.insert().values(edge=edge.url, tags=[f"p:{product.id}"]))
    edge_app.extensions["shelf.region"].purge(None)  # Shelf's own entry, as its outbox would

    assert edge_app.extensions["shelf.edge"].drain() == 1
    assert edge_app.extensions["shelf.edge"].pending() == 0
    assert pending_rows(engine) == 1  # the retired edge's row, left alone
    assert request("GET", url).json()["description"] == "after"


def test_a_fetch_that_began_before_a_purge_is_delivered_but_not_stored(shelf_http):
    """The edge's own race: a fetch reads the old state, the write commits and purges, and the
    old body arrives after the purge. Without the VCL's guard it would stay until its TTL."""
    release, answered = threading.Event(), []

    def backend(environ, start_response):
        if environ["PATH_INFO"] == "/slow" and not answered:
            release.wait(10)
        answered.append(environ["PATH_INFO"])
        start_response(
            "200 OK", [("Cache-Control", "public, max-age=60"), ("xkey", "t"), ("Content-Length", "1")]
        )
        return [str(len(answered)).encode()]

    shelf_http.app = backend
    with varnish.edge(shelf_http.port) as running:
        slow = threading.Thread(target=request, args=("GET", running.url + "/slow"))
        slow.start()
        assert wait_until(lambda: running.stats().get("backend_req", 0) >= 1)
        assert request("PURGE", running.url + "/", headers={"xkey-purge": "t"}).status == 200
        release.set()
        slow.join()
        again = request("GET", running.url + "/slow")
    assert again.headers["X-Cache"] == "MISS"
    assert again.data == b"2"


def stale_reads(app, edge, engine, auth, seconds: float = 4.0) -> tuple[int, int]:
    """Readers through the edge (product detail and a list page of hot products) while a writer
    changes them directly at Shelf: reads that began after a write's 2xx and show an older version."""
    category = make_category(engine)
    hot = [make_product(engine, category, description="v-0") for _ in range(3)]
    acked = {product.id: 0 for product in hot}
    counts, stop = {"stale": 0, "reads": 0}, threading.Event()
    urls = [f"{edge.url}/v1/products/{p.id}" for p in hot] + [
        f"{edge.url}/v1/products?category={category.slug}"
    ]

    def read() -> None:
        while not stop.is_set():
            url = random.choice(urls)  # noqa: S311
            expected = dict(acked)
            body = request("GET", url).json()
            for item in body.get("items", [body]):
                counts["reads"] += 1
                counts["stale"] += int(item["description"].split("-")[1]) < expected[item["id"]]

    readers = [threading.Thread(target=read) for _ in range(4)]
    for reader in readers:
        reader.start()
    writer, version, deadline = app.test_client(), 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        version += 1
        product = random.choice(hot)  # noqa: S311
        changes = {"description": f"v-{version}", "price": f"{random.randint(1, 500)}.00"}  # noqa: S311
        assert writer.patch(f"/v1/products/{product.id}", json=changes, headers=auth).status_code == 200
        acked[product.id] = version
        time.sleep(0.02)
    stop.set()
    for reader in readers:
        reader.join()
    return counts["stale"], counts["reads"]


def test_reads_through_the_edge_see_every_acknowledged_write(edge_app, edge, engine, auth):
    stale, reads = stale_reads(edge_app, edge, engine, auth)
    assert reads > 100
    assert stale == 0


def test_without_purging_reads_through_the_edge_are_stale(make_app, shelf_http, edge, engine, auth):
    """The same readers and writer with no edge configured to purge: the edge serves old bodies
    until their max-age, which is what the test above would catch if purging broke."""
    shelf_http.app = make_app()
    stale, reads = stale_reads(shelf_http.app, edge, engine, auth)
    assert reads > 100
    assert stale > 0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SHELF_EDGE_PURGE_URLS", "varnish:6081"),
        ("SHELF_EDGE_PURGE_URLS", "http://varnish:6081 http://other"),
        ("SHELF_EDGE_TAG_HEADER", "X-Tags"),
        ("SHELF_EDGE_PURGE_MODE", "ban"),
    ],
)
def test_malformed_edge_settings_refuse_to_start(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_edge_settings_are_read_from_the_environment():
    settings = Settings.from_env(
        {
            "SHELF_EDGE_PURGE_URLS": "http://varnish-1:6081/, http://varnish-2:6081",
            "SHELF_EDGE_TAG_HEADER": "surrogate-key",
            "SHELF_EDGE_PURGE_MODE": "softpurge",
        }
    )
    assert settings.edge_purge_urls == ("http://varnish-1:6081", "http://varnish-2:6081")
    assert (settings.edge_tag_header, settings.edge_purge_mode) == ("Surrogate-Key", "softpurge")


def test_the_compose_edge_profile_puts_the_repository_vcl_in_front_of_the_api():
    compose = YAML(typ="safe").load((varnish.ROOT / "compose.yaml").read_text())
    service = compose["services"]["varnish"]
    assert service["profiles"] == ["edge"]
    assert service["depends_on"]["api"]["condition"] == "service_healthy"
    dockerfile = (varnish.ROOT / service["build"] / "Dockerfile").read_text()
    assert "COPY shelf.vcl shelf-backend.vcl /etc/varnish/" in dockerfile
    backend = (varnish.VCL_DIR / "shelf-backend.vcl").read_text()
    assert '.host = "api";' in backend and '.port = "8000";' in backend
    assert "SHELF_EDGE_PURGE_URLS" in compose["services"]["api"]["environment"]


def tagged_backend(headers: list[tuple[str, str]]):
    served: list[str] = []

    def backend(environ, start_response):
        served.append(environ["PATH_INFO"])
        body = str(len(served)).encode()
        start_response("200 OK", [*headers, ("Content-Length", str(len(body)))])
        return [body]

    return backend, served


def test_grace_comes_from_stale_while_revalidate(shelf_http):
    shelf_http.app, served = tagged_backend(
        [("Cache-Control", "public, max-age=1, stale-while-revalidate=30"), ("xkey", "t")]
    )
    with varnish.edge(shelf_http.port) as running:
        request("GET", running.url + "/g")
        time.sleep(1.5)
        late = request("GET", running.url + "/g")
        assert late.headers["X-Cache"] == "HIT"  # the expired object, while it is refetched
        assert late.data == b"1"
        assert wait_until(lambda: len(served) == 2)


def test_surrogate_key_tags_are_purged_like_xkey(shelf_http):
    shelf_http.app, served = tagged_backend(
        [("Cache-Control", "public, max-age=60"), ("Surrogate-Key", "s t")]
    )
    with varnish.edge(shelf_http.port) as running:
        request("GET", running.url + "/s")
        assert request("GET", running.url + "/s").headers["X-Cache"] == "HIT"
        assert request("PURGE", running.url + "/", headers={"xkey-purge": "t"}).status == 200
        assert request("GET", running.url + "/s").headers["X-Cache"] == "MISS"


def test_untagged_responses_are_not_stored(shelf_http):
    shelf_http.app, served = tagged_backend([("Cache-Control", "public, max-age=60")])
    with varnish.edge(shelf_http.port) as running:
        request("GET", running.url + "/u")
        assert request("GET", running.url + "/u").headers["X-Cache"] == "PASS"
    assert len(served) == 2


def test_edge_purges_are_replayed_after_shelfs_own_cache_catches_up(
    make_app, shelf_http, edge, redis_url, redis_proxy, engine, auth
):
    """Redis down at the write: the edge is purged at once, but an edge refetch could store what a
    process with a healthy Redis connection still serves, so the purge stays pending and is sent
    again only once the cache outbox is empty."""
    proxied_redis = urlsplit(redis_url)._replace(netloc=f"127.0.0.1:{redis_proxy.port}").geturl()
    app = shelf_http.app = make_app(redis_url=proxied_redis, edge_purge_urls=(edge.url,))
    product = make_product(engine, make_category(engine), description="before")
    request("GET", f"{edge.url}/v1/products/{product.id}")
    redis_proxy.down()

    response = app.test_client().patch(
        f"/v1/products/{product.id}", json={"description": "after"}, headers=auth
    )
    assert response.status_code == 200
    assert response.headers["X-Edge-Purge"] == "pending"
    time.sleep(2.5)  # the edge's retry ticks, and waits: Shelf's own invalidation is still pending
    assert pending_rows(engine) >= 1
    assert app.extensions["shelf.outbox"].pending() >= 1

    redis_proxy.restore()
    assert wait_until(lambda: pending_rows(engine) == 0, timeout=20)
    assert app.extensions["shelf.outbox"].pending() == 0
    assert request("GET", f"{edge.url}/v1/products/{product.id}").json()["description"] == "after"


def test_softpurge_serves_the_old_body_from_grace_while_it_refetches(
    make_app, shelf_http, edge, engine, auth
):
    """What README says of SHELF_EDGE_PURGE_MODE=softpurge: the purge is acknowledged, and the next
    read through the edge may still be the old body."""
    app = shelf_http.app = make_app(edge_purge_urls=(edge.url,), edge_purge_mode="softpurge")
    product = make_product(engine, make_category(engine), description="before")
    url = f"{edge.url}/v1/products/{product.id}"
    request("GET", url)

    response = app.test_client().patch(
        f"/v1/products/{product.id}", json={"description": "after"}, headers=auth
    )
    assert response.headers["X-Edge-Purge"] == "done"
    assert request("GET", url).json()["description"] == "before"
    assert wait_until(lambda: request("GET", url).json()["description"] == "after")


def purged_tags(engine) -> set[str]:
    with engine.connect() as conn:
        return {tag for tags in conn.scalars(select(EdgePurge.tags)) for tag in tags}


def test_a_write_purges_the_lists_of_its_scopes_only_when_it_moves_a_listing(
    make_app, engine, auth, unused_port
):
    app = make_app(edge_purge_urls=(f"http://127.0.0.1:{unused_port}",), edge_purge_timeout_ms=200)
    category = make_category(engine)
    product = make_product(engine, category, price="10.00")
    client = app.test_client()

    client.patch(f"/v1/products/{product.id}", json={"stock": 77}, headers=auth)  # stays in stock
    tags = purged_tags(engine)
    assert f"p:{product.id}" in tags
    assert not any(tag.startswith("l:") for tag in tags)

    client.patch(f"/v1/products/{product.id}", json={"price": "99.00"}, headers=auth)
    assert {"l:all", f"l:{category.slug}"} <= purged_tags(engine)
