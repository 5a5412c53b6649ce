"""Shelf behind a real Varnish (``varnish/shelf.vcl``): tags, purge on write, conditional requests,
and an edge that is down or slow (``api.edge_tags``, ``api.edge_purge``, ``loadtest.varnish``)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select, text

from api.models import EdgePurge
from loadtest import varnish
from tests.edge_support import ShelfHttp, request, wait_until
from tests.factories import make_category, make_product
from tests.netproxy import TcpProxy

pytestmark = pytest.mark.skipif(
    not varnish.available(), reason="varnishd not installed (.ci/run installs it)"
)


@pytest.fixture
def shelf_http():
    server = ShelfHttp()
    yield server
    server.close()


@pytest.fixture
def edge(shelf_http):
    with varnish.edge(shelf_http.port) as running:
        yield running


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
