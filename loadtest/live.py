"""Load-testing a running ``make run`` (or any Shelf): what the Locust suite finds out by itself.

``locust -f loadtest/locustfile.py --host http://127.0.0.1:8000`` needs two facts about the server it
is pointed at: which product ids exist, and whether the server's per-client read budget leaves room
for a load test (``make run`` keeps the default 1,200 reads a minute per address, so a load test
from one machine is mostly 429s).

* :func:`active_ids` reads the active products' ids from the database: ``DATABASE_URL`` when set,
  else the running ``make run``'s (``api.local_servers``); with neither it refuses, naming both.
* :func:`read_budget` reads the server's read budget from the ``RateLimit-Policy`` of one cheap
  read; :func:`budget_refusal` explains, when that budget would throttle the test, how to lift it
  (restart the server with ``SHELF_RATE_LIMITS_ENABLED=false``), unless told to measure with it.
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request

from sqlalchemy import create_engine, text

from api import local_servers
from catalog.config import normalize_database_url

LOAD_TEST_READS_PER_SECOND = 1000
"""A read budget below this per second, per client, throttles a load test from one machine."""

POLICY = re.compile(r'"reads[^"]*";q=(\d+);w=(\d+)')


def database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    found = local_servers.discover(os.environ)
    if found and "DATABASE_URL" in found[1]:
        return found[1]["DATABASE_URL"]
    raise SystemExit(
        "loadtest: which products exist? DATABASE_URL is unset and no `make run` is running in "
        f"{local_servers.data_dir(os.environ)}; start `make run`, set DATABASE_URL to the server's "
        "database, or pass --ids-file (one product id a line) or --catalog-size N (ids 1..N)"
    )


def active_ids(url: str) -> list[int]:
    """The ids of active products (inactive ones answer 404), in id order."""
    engine = create_engine(normalize_database_url(url))
    try:
        with engine.connect() as conn:
            return list(conn.execute(text("SELECT id FROM products WHERE is_active ORDER BY id")).scalars())
    finally:
        engine.dispose()


def read_budget(host: str) -> tuple[int, int] | None:
    """(reads, seconds) of the server's per-client read budget, or None when it sends none."""
    if not host.startswith(("http://", "https://")):
        raise SystemExit(f"loadtest: --host must be an http(s) URL, got {host!r}")
    request = urllib.request.Request(host.rstrip("/") + "/v1/categories", method="HEAD")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - the host under test
            policy = response.headers.get("RateLimit-Policy", "")
    except urllib.error.HTTPError as error:  # a 429 has the policy too
        policy = error.headers.get("RateLimit-Policy", "")
        error.close()
    budgets = [(int(q), int(w)) for q, w in POLICY.findall(policy)]
    return min(budgets, key=lambda b: b[0] / b[1]) if budgets else None


def budget_refusal(host: str) -> str | None:
    """Why a load test against ``host`` would measure mostly 429s, and how to lift the budget."""
    budget = read_budget(host)
    if budget is None or budget[0] / budget[1] >= LOAD_TEST_READS_PER_SECOND:
        return None
    reads, seconds = budget
    return (
        f"loadtest: {host} allows {reads} reads per {seconds} s per client, so a load test from this "
        "machine would be mostly 429s. Restart the server without the budget "
        "(`SHELF_RATE_LIMITS_ENABLED=false make run`), or pass --allow-rate-limits to measure the "
        "limiter itself."
    )
