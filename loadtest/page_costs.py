"""What one product-list page hit costs: Redis round trips and SQL statements, near cache on and off.

Measured in-process against the benchmark's database and Redis: a first page is read until it is a
hit with its products in place (the near cache's, or Redis's), then one more read is counted.
Round trips are counted where redis-py writes to the socket (a pipeline is one), statements where
SQLAlchemy sends them.

    python -m loadtest.page_costs --database-url ... --redis-url ...
"""

from __future__ import annotations

import argparse
import json
import os
from contextlib import contextmanager
from unittest import mock

import redis
from sqlalchemy import event

PATHS = ("/v1/products?sort=price", "/v1/products?sort=newest", "/v1/products?sort=-rating")


@contextmanager
def counted(engine):
    """Counts of Redis writes to a socket and SQL statements while the block runs."""
    counts = {"redis_round_trips": 0, "sql_statements": 0}
    original = redis.connection.AbstractConnection.send_packed_command

    def send(connection, command, check_health=True):
        counts["redis_round_trips"] += 1
        return original(connection, command, check_health)

    def statement(*_args):
        counts["sql_statements"] += 1

    event.listen(engine, "before_cursor_execute", statement)
    try:
        with mock.patch.object(redis.connection.AbstractConnection, "send_packed_command", send):
            yield counts
    finally:
        event.remove(engine, "before_cursor_execute", statement)


def one_hit(database_url: str, redis_url: str, near_entries: int) -> dict:
    from api import create_app
    from catalog.config import Settings

    environ = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "SHELF_ENV": "development"}
    environ |= {"SHELF_RATE_LIMITS_ENABLED": "false", "SHELF_WARM_ON_START": "false"}
    environ["SHELF_CACHE_LOCAL_ENTRIES"] = str(near_entries)
    app = create_app(Settings.from_env(environ))
    client = app.test_client()
    try:
        results = []
        for path in PATHS:
            for _ in range(3):  # fill the page; its products; the near cache with both
                for item in client.get(path).get_json()["items"]:
                    client.get(f"/v1/products/{item['id']}")
            app.extensions["shelf.cache_client"].ping()  # the fills' tracking pushes are in
            with counted(app.extensions["shelf.engine"]) as counts:
                response = client.get(path)
            results.append({"path": path, "x_cache": response.headers.get("X-Cache"), **counts})
        return {"near_cache_entries": near_entries, "reads": results}
    finally:
        app.extensions["shelf.engine"].dispose()


def measure(database_url: str, redis_url: str) -> list[dict]:
    return [one_hit(database_url, redis_url, entries) for entries in (50_000, 0)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"), required=False)
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"), required=False)
    opts = parser.parse_args(argv)
    print(json.dumps(measure(opts.database_url, opts.redis_url), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
