"""Outage drills against real servers: Redis cut and slowed mid-stream, PostgreSQL stopped.

Redis faults go through a TCP proxy in front of the real Redis; the
PostgreSQL drill starts its own embedded PostgreSQL (scripts/dev_services.py,
on its own port and data folder) and stops that one, never the machine's.
Each drill asserts the figures the README promises: no 5xx on reads while
Redis is out, every write answered 2xx, no stale read once Redis is back,
and after PostgreSQL returns every acknowledged write present and nothing
half-written.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from api import create_app
from api.cli import upgrade_database
from tests.conftest import load_dev_services
from tests.factories import make_category, make_products, token

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parent.parent


def database_stock(engine, product_id: int) -> int:
    with engine.connect() as conn:
        return conn.scalar(text("SELECT stock FROM products WHERE id = :id"), {"id": product_id})


def test_redis_cut_mid_stream_then_restored(proxied, redis_proxy, engine, auth):
    """300 operations over 12 products, a write every 5th; Redis is cut for the middle third."""
    client = proxied.test_client()
    products = make_products(engine, make_category(engine), 12)
    reads = read_errors = writes = write_errors = stale = 0
    for step in range(300):
        if step == 100:
            redis_proxy.down()
        if step == 200:
            redis_proxy.restore()
        product = products[step % len(products)]
        if step % 5 == 0:
            response = client.patch(f"/v1/products/{product.id}", json={"stock": step}, headers=auth)
            writes += 1
            write_errors += response.status_code != 200
            continue
        response = client.get(f"/v1/products/{product.id}")
        reads += 1
        read_errors += response.status_code >= 500
        if step >= 200 and response.status_code == 200:
            stale += response.get_json()["stock"] != database_stock(engine, product.id)
    assert (read_errors, write_errors) == (0, 0)
    assert stale == 0
    print(f"\nredis cut drill: {reads} reads, {writes} writes, 0 errors, {stale} stale reads after restore")  # noqa: T201


def test_a_slow_redis_costs_no_more_than_its_timeout(proxied, redis_proxy, engine):
    client = proxied.test_client()
    [product] = make_products(engine, make_category(engine), 1)
    client.get(f"/v1/products/{product.id}")
    redis_proxy.delay = 2.0  # every Redis reply now takes 2 s
    started = time.monotonic()
    states = [client.get(f"/v1/products/{product.id}").headers["X-Cache"] for _ in range(20)]
    elapsed = time.monotonic() - started
    assert set(states) == {"BYPASS"}
    # 20 reads: a handful pay the 100 ms timeout before the breaker opens, the rest skip Redis.
    assert elapsed < 5.0, elapsed
    assert proxied.extensions["shelf.region"].breaker.state.name == "OPEN"


# --- PostgreSQL stopped -----------------------------------------------------------------------


@pytest.fixture
def own_postgres():
    dev_services = load_dev_services()
    root = Path(tempfile.mkdtemp(prefix="shelf-drill-"))  # reachable by the server's own user
    server = dev_services.Postgres(root)
    server.ensure_running()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


def test_postgres_stopped_cached_reads_go_on_and_no_acknowledged_write_is_lost(
    own_postgres, settings, auth, redis_client
):
    url = own_postgres.url("postgres").replace("postgresql://", "postgresql+psycopg2://")
    upgrade_database(url)
    app = create_app(settings.replace(database_url=url, jobs_eager=False))
    client = app.test_client()
    engine = create_engine(url)
    category = make_category(engine)
    cached = make_products(engine, category, 5)
    for product in cached:
        assert client.get(f"/v1/products/{product.id}").status_code == 200

    acknowledged, refused, cached_reads, uncached_503 = [], [], 0, 0
    for step in range(30):
        if step == 10:
            engine.dispose()
            own_postgres.stop()
        if step == 20:
            own_postgres.ensure_running()
        sku = token("DRILL").upper()
        body = {"sku": sku, "name": "Drill", "brand": "B", "price": "1.00", "category": category.slug}
        response = client.post("/v1/products", json=body, headers=auth)
        assert response.status_code in (201, 503), response.get_json()
        (acknowledged if response.status_code == 201 else refused).append(sku)
        read = client.get(f"/v1/products/{cached[step % 5].id}")
        assert read.status_code == 200  # cached entries are served whatever PostgreSQL does
        cached_reads += 1
        if 10 <= step < 20:
            uncached_503 += client.get(f"/v1/products/{cached[-1].id + 1000}").status_code == 503

    assert len(refused) == 10 and uncached_503 == 10
    with engine.connect() as conn:
        stored = set(conn.scalars(text("SELECT sku FROM products WHERE sku LIKE 'DRILL-%'")))
        orphans = conn.scalar(
            text("SELECT count(*) FROM products p LEFT JOIN product_rating_summaries s ON s.product_id = p.id"
                 " WHERE s.product_id IS NULL")
        )  # fmt: skip
    assert stored == set(acknowledged)
    assert orphans == 0  # no product without its summary row: nothing half-written
    engine.dispose()
    app.extensions["shelf.engine"].dispose()
    print(  # noqa: T201
        f"\npostgres drill: {len(acknowledged) + len(refused)} writes, {len(acknowledged)} acknowledged and"
        f" present, {len(refused)} refused with 503, {cached_reads} cached reads all 200"
    )
