"""Two Shelf instances on one Redis and one PostgreSQL keep read-your-writes across each other.

Each instance is its own server process (gunicorn with one worker, as tests/test_gunicorn.py starts
it: its own near cache and connection pools), on a free port over the test servers. A write
answered 2xx by one must be seen by the very next read through the other, though that one held the
old entry in its near cache a moment before: its Redis listener must have dropped it by then
(cache.backends.near).
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from decimal import Decimal

import pytest

from tests.conftest import TEST_TOKEN
from tests.factories import make_category, make_product
from tests.test_gunicorn import free_port, start, wait_until_serving

pytestmark = pytest.mark.system

ROUNDS = 20


@pytest.fixture
def instances(settings, redis_client):
    env = {"SHELF_WEB_WORKERS": "1", "SHELF_API_TOKENS": f"tests:{TEST_TOKEN}"}
    env |= {"SHELF_RATE_LIMITS_ENABLED": "false", "SHELF_WARM_ON_START": "false"}
    ports = [free_port(), free_port()]
    processes = [start(settings, port, stderr=subprocess.DEVNULL, **env) for port in ports]
    try:
        yield [
            wait_until_serving(process, port, workers=1)
            for process, port in zip(processes, ports, strict=True)
        ]
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=15)


def call(method: str, url: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {TEST_TOKEN}", "Content-Type": "application/json"}
    request = urllib.request.Request(url, data, headers, method=method)  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - our test server
        return json.loads(answer.read())


def test_a_write_through_one_instance_is_read_through_the_other(instances, engine):
    category = make_category(engine)
    products = [make_product(engine, category, price=Decimal(10 + n)) for n in range(4)]
    prices = {p.id: Decimal(p.price) for p in products}
    page_url = f"/v1/products?category={category.slug}&sort=price"
    stale = []
    for round_ in range(ROUNDS):
        writer, reader = instances[round_ % 2], instances[(round_ + 1) % 2]
        product_id = products[round_ % len(products)].id
        call("GET", f"{reader}/v1/products/{product_id}")  # the reader's near cache holds the entry
        call("GET", reader + page_url)
        prices[product_id] += 100
        call("PATCH", f"{writer}/v1/products/{product_id}", {"price": str(prices[product_id])})
        if Decimal(call("GET", f"{reader}/v1/products/{product_id}")["price"]) != prices[product_id]:
            stale.append(f"round {round_}: product {product_id}")
        listed = [item["id"] for item in call("GET", reader + page_url)["items"]]
        if listed != sorted(prices, key=lambda pid: (prices[pid], pid)):
            stale.append(f"round {round_}: list page {listed}")
    assert stale == []
