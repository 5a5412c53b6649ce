"""/readyz while the warm on start runs (catalog.readiness), and the warm itself (jobs.warming)."""

from __future__ import annotations

import pytest

from catalog import readiness
from catalog.popularity import PAGES_KEY
from jobs import context
from jobs.warming import warm_on_start
from tests.factories import make_category, make_products


@pytest.fixture
def warming_app(make_app):
    app = make_app(warm_on_start=True, warm_ready_ratio=0.9, warm_ready_seconds=600)
    context.use(app.extensions["shelf.runtime"])
    yield app
    context.use(None)


def readyz(app):
    return app.test_client().get("/readyz")


def test_readyz_says_warming_until_the_warm_covers_the_goal_then_stays_ready(warming_app):
    queue = warming_app.extensions["shelf.queue"]
    answer = readyz(warming_app)
    assert answer.status_code == 503
    assert answer.get_json()["detail"] == "not ready: warming"
    assert answer.get_json()["checks"] == {"postgres": "ok", "redis": "ok", "warm": "warming"}
    readiness.report(queue, 0.89, done=False)
    assert readyz(warming_app).status_code == 503
    readiness.report(queue, 0.9, done=False)
    assert readyz(warming_app).status_code == 200
    readiness.restart(queue)  # another instance starting: this one stays in
    assert readyz(warming_app).status_code == 200


def test_a_finished_warm_is_ready_whatever_it_covered(warming_app):
    readiness.report(warming_app.extensions["shelf.queue"], 0.1, done=True)
    assert readyz(warming_app).status_code == 200


@pytest.mark.parametrize(
    "stored", [b"not json", b"[1]", b'{"covered": 2, "done": false}', b'{"covered": 1, "done": "yes"}']
)
def test_progress_that_does_not_parse_is_no_progress(warming_app, stored):
    warming_app.extensions["shelf.queue"].set(readiness.PROGRESS_KEY, stored)
    assert readyz(warming_app).status_code == 503


def test_past_the_time_budget_an_instance_is_ready_without_any_warm(make_app):
    app = make_app(warm_on_start=True, warm_ready_seconds=0)
    assert readyz(app).status_code == 200


def test_with_warm_on_start_off_readyz_does_not_wait(make_app):
    assert readyz(make_app(warm_on_start=False, warm_ready_seconds=600)).status_code == 200


def test_the_warm_fills_the_most_read_list_pages_and_products_and_reports_ready(warming_app, engine):
    category = make_category(engine)
    products = make_products(engine, category, 5)
    viewed = products[:4]  # the fifth is only ever listed: warmed as a listed page's product
    client = warming_app.test_client()
    pages = [f"/v1/products?category={category.slug}&sort=price", "/v1/products?sort=-price&limit=3"]
    for path in [*pages, *(f"/v1/products/{p.id}" for p in viewed)]:
        assert client.get(path).status_code == 200
    warming_app.extensions["shelf.views"].flush()
    queue = warming_app.extensions["shelf.queue"]
    queue.zincrby(PAGES_KEY, 1, b'{"sort": "sideways"}')  # read back from Redis: validated, skipped
    warming_app.extensions["shelf.region"].purge(None)

    summary = warm_on_start(limit=100)

    assert summary["list_pages"] == 2
    assert summary["stored"] == len(products)
    covered, done = readiness.progress(queue)
    assert done and covered == pytest.approx(6 / 7, abs=1e-4)  # 2 page reads and 4 views of 7 reads
    assert readyz(warming_app).status_code == 200
    for path in [*pages, *(f"/v1/products/{p.id}" for p in products)]:
        assert client.get(path).headers["X-Cache"] == "HIT", path
