"""/readyz while the warm on start runs (catalog.readiness), and the warm itself (jobs.warming)."""

from __future__ import annotations

import pytest

from catalog import readiness
from catalog.popularity import PAGES_KEY
from catalog.schemas import SORTS
from jobs import context
from jobs.warming import Coverage, Tally, warm_on_start
from tests.factories import make_category, make_product, make_products


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
    category, elsewhere = make_category(engine), make_category(engine)
    products = make_products(engine, category, 5, price="50.00")
    unread = make_product(engine, elsewhere, price="1.00")  # neither viewed nor on a read page
    viewed = products[:4]  # the fifth is only ever listed: warmed as a listed page's product
    client = warming_app.test_client()
    pages = [f"/v1/products?category={category.slug}&sort=price", "/v1/products?sort=-price&limit=3"]
    for path in [*pages, *pages, *(f"/v1/products/{p.id}" for p in [*viewed, *viewed[:2]])]:
        assert client.get(path).status_code == 200
    warming_app.extensions["shelf.views"].flush()
    queue = warming_app.extensions["shelf.queue"]
    queue.zincrby(PAGES_KEY, 1, b'{"sort": "sideways"}')  # read back from Redis: validated, skipped
    warming_app.extensions["shelf.region"].purge(None)

    summary = warm_on_start(limit=100)

    # The two pages read, and the first page of every sort of the three lists but the one read.
    assert summary["list_pages"] == 2 + 3 * len(SORTS) - 1
    assert summary["products"] == summary["stored"] == len(products) + 1
    covered, done = readiness.progress(queue)
    # Pages: 5 reads, 1 of them of a page read once (1/5 unseen), 4 filled, and every first page no
    # count names: 4/5 x 4/5 + 1/5. Views: 6, two products read once (1/3 unseen), all filled, and the
    # two active products never viewed as well: 1.
    assert done and covered == pytest.approx((5 * 0.84 + 6 * 1.0) / 11, abs=1e-4)
    assert readyz(warming_app).status_code == 200
    for path in [*pages, *(f"/v1/products/{p.id}" for p in [*products, unread])]:
        assert client.get(path).headers["X-Cache"] == "HIT", path


def test_the_warm_stops_at_its_limit(warming_app, engine):
    category = make_category(engine)
    products = make_products(engine, category, 4)
    client = warming_app.test_client()
    assert client.get(f"/v1/products/{products[0].id}").status_code == 200
    warming_app.extensions["shelf.views"].flush()
    warming_app.extensions["shelf.region"].purge(None)

    summary = warm_on_start(limit=3)

    assert summary["products"] == summary["stored"] == 3
    hits = [client.get(f"/v1/products/{p.id}").headers["X-Cache"] for p in products]
    assert hits == ["HIT", "HIT", "HIT", "MISS"]  # the viewed one first, then the others by id


def test_a_tally_of_well_counted_reads_is_the_share_filled():
    pages = Tally(reads=400.0, unseen=0.0, unread=50)
    pages.filled([100.0, 150.0, 60.0])
    assert pages.share() == pytest.approx(310 / 400)
    pages.filled([0.0] * 50)  # items no count names share no reads
    assert pages.share() == pytest.approx(310 / 400)


def test_a_tally_spreads_the_unseen_share_over_the_items_never_read():
    young = Tally(reads=100.0, unseen=0.4, unread=1000)  # 40 of 100 views were first sights
    young.filled([100.0])  # every product that was viewed
    assert young.share() == pytest.approx(0.6)
    young.filled([0.0] * 500)
    assert young.share() == pytest.approx(0.6 + 0.4 * 0.5)
    young.filled([0.0] * 600)  # more than were counted as never read: at most all of it
    assert young.share() == pytest.approx(1.0)


def test_coverage_weighs_each_tally_by_its_reads():
    pages, views = Tally(reads=100.0, unseen=0.0, unread=0), Tally(reads=300.0, unseen=0.0, unread=0)
    pages.filled([100.0])
    assert Coverage(pages, views).share() == pytest.approx(0.25)
    assert Coverage(Tally(0.0, 1.0, 10), Tally(0.0, 1.0, 10)).share() == 0.0  # nothing recorded
