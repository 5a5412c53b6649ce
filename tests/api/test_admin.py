"""Operating the cache: stats, purge (HTTP and CLI), drain, and /metrics."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.http import parse_options_header

from api import caching
from tests.factories import make_category, make_product


def read_twice(client, path):
    client.get(path)
    client.get(path)


def test_stats_count_hits_and_misses_per_resource(client, engine, auth):
    product = make_product(engine, make_category(engine))
    read_twice(client, f"/v1/products/{product.id}")
    read_twice(client, "/v1/categories")
    response = client.get("/v1/admin/cache/stats", headers=auth)
    assert response.status_code == 200
    body = response.get_json()
    assert body["enabled"] is True and body["breaker"] == "closed" and body["outbox_pending"] == 0
    product_stats = body["resources"]["product"]
    assert (product_stats["hits"], product_stats["misses"], product_stats["hit_ratio"]) == (1, 1, 0.5)
    assert body["resources"]["category_tree"]["fills"] == 1
    assert body["resources"]["reviews"]["hit_ratio"] is None


def test_admin_endpoints_need_a_token(client):
    assert client.get("/v1/admin/cache/stats").status_code == 401
    assert client.post("/v1/admin/cache/purge", json={}).status_code == 401


def test_purge_one_resource_or_everything(client, engine, auth):
    product = make_product(engine, make_category(engine))
    read_twice(client, f"/v1/products/{product.id}")
    read_twice(client, "/v1/categories")
    purged = client.post("/v1/admin/cache/purge", json={"resource": "product"}, headers=auth)
    assert purged.get_json() == {"deleted": 1}
    assert client.get(f"/v1/products/{product.id}").headers["X-Cache"] == "MISS"
    assert client.get("/v1/categories").headers["X-Cache"] == "HIT"
    everything = client.post("/v1/admin/cache/purge", json={}, headers=auth).get_json()
    assert everything == {"deleted": 2}
    assert client.get("/v1/categories").headers["X-Cache"] == "MISS"


def test_purge_rejects_unknown_resources(client, auth):
    response = client.post("/v1/admin/cache/purge", json={"resource": "users"}, headers=auth)
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "resource"


def test_cli_purge_and_drain(app, runner, client, engine):
    product = make_product(engine, make_category(engine))
    read_twice(client, f"/v1/products/{product.id}")
    result = runner.invoke(args=["cache", "purge", "--resource", "product", "--yes"])
    assert result.exit_code == 0 and "deleted 1 entries" in result.output
    result = runner.invoke(args=["cache", "drain"])
    assert result.exit_code == 0 and "applied 0 pending invalidations" in result.output


def test_metrics_expose_cache_counters_in_prometheus_format(client, engine):
    product = make_product(engine, make_category(engine))
    read_twice(client, f"/v1/products/{product.id}")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert 'shelf_cache_hits_total{resource="product"} 1.0' in text
    assert "shelf_cache_breaker_state 0.0" in text


def test_metrics_send_prometheus_content_type_once_and_parse(client, engine):
    product = make_product(engine, make_category(engine))
    read_twice(client, f"/v1/products/{product.id}")
    response = client.get("/metrics")
    header = response.headers.getlist("Content-Type")
    assert header == [CONTENT_TYPE_LATEST]
    _mimetype, params = parse_options_header(header[0])
    names = [part.split("=")[0].strip() for part in header[0].split(";")[1:]]
    assert sorted(names) == sorted(set(names)) and params == {"version": "1.0.0", "charset": "utf-8"}
    families = {
        family.name: family for family in text_string_to_metric_families(response.get_data(as_text=True))
    }
    hits = [s for s in families["shelf_cache_hits"].samples if s.labels == {"resource": "product"}]
    assert [s.value for s in hits if s.name == "shelf_cache_hits_total"] == [1.0]


def test_metrics_count_sql_statements(client, engine):
    product = make_product(engine, make_category(engine))

    def statements():
        lines = client.get("/metrics").get_data(as_text=True).splitlines()
        return next(float(line.split()[1]) for line in lines if line.startswith("shelf_db_statements_total "))

    before = statements()
    client.get(f"/v1/products/{product.id}")  # a miss: reads the database
    missed = statements()
    client.get(f"/v1/products/{product.id}")  # a hit: does not
    assert missed > before
    assert statements() == missed


def test_stats_show_every_counter_the_cache_counts(app, client, engine, auth):
    product = make_product(engine, make_category(engine))
    for _ in range(3):
        client.get(f"/v1/products/{product.id}")
    shown = client.get("/v1/admin/cache/stats", headers=auth).get_json()["resources"]
    with app.app_context():
        computed = caching.stats()["resources"]
    assert shown == computed
    assert shown["product"]["local_hits"] >= 1  # the near cache's hits reach operators
