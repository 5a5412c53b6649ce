"""The fast path (api/fast_path.py): a near-cache hit answered before Flask, exactly as Flask would.

Each response of the fast path is compared with Flask's answer to the same request, from an app
with ``SHELF_FAST_PATH=false`` over the same database and Redis; and every request it must not
answer is shown to reach Flask.
"""

from __future__ import annotations

import re

import pytest

from api.fast_path import FastPath
from tests.api.test_caching import app_commands_sent
from tests.conftest import log_records
from tests.factories import make_category, make_product

VARYING = {
    "Server-Timing": re.compile(r"cache;dur=\d+\.\d\d, db;dur=0\.00"),
    "RateLimit": re.compile(r"\"reads\";r=\d+;t=\d+"),
    "X-Request-ID": re.compile(r"[0-9a-f]{32}|parity-check-1"),  # the client's, or a new one
}


def fast_path_of(app) -> FastPath | None:
    layer = app.wsgi_app
    while not isinstance(layer, FastPath) and hasattr(layer, "app"):
        layer = layer.app  # ProxyFix, when proxies are trusted
    return layer if isinstance(layer, FastPath) else None


class Served:
    """Counts the requests the fast path handed on to Flask."""

    def __init__(self, app):
        self.fast = fast_path_of(app)
        self.by_flask = 0
        flask_app = self.fast.wsgi_app

        def counting(environ, start_response):
            self.by_flask += 1
            return flask_app(environ, start_response)

        self.fast.wsgi_app = counting


@pytest.fixture
def product(engine):
    return make_product(engine, make_category(engine))


def held(app, path: str):
    """GET ``path`` until the app's near cache holds it: a fill or a read from Redis, then one it keeps."""
    client = app.test_client()
    assert client.get(path).status_code == 200
    app.extensions["shelf.cache_client"].ping()  # the fill's own tracking push is in (see test_near)
    assert client.get(path).headers["X-Cache"] == "HIT"
    return client


def comparable(response) -> tuple:
    headers = sorted(response.headers.items())
    for name, value in headers:
        if name in VARYING:
            assert VARYING[name].fullmatch(value), (name, value)
    return response.status, response.get_data(), [(n, "~" if n in VARYING else v) for n, v in headers]


CASES = {
    "plain": {},
    "request id": {"X-Request-ID": "parity-check-1"},
    "not modified": {"If-None-Match": "ETAG"},
    "other etag": {"If-None-Match": '"something-else"'},
    "weak etag among others": {"If-None-Match": '"a", W/ETAG'},
}


@pytest.mark.parametrize(
    "settings_changes", [{}, {"hsts_seconds": 600, "cors_origins": ("https://shop.test",)}]
)
@pytest.mark.parametrize("case", CASES)
def test_a_fast_path_answer_is_the_one_flask_gives(make_app, product, settings_changes, case):
    fast_app = make_app(**settings_changes)
    flask_app = make_app(**settings_changes, fast_path=False)
    path = f"/v1/products/{product.id}"
    fast, flask = held(fast_app, path), held(flask_app, path)
    etag = fast.get(path).headers["ETag"]
    headers = {name: value.replace("ETAG", etag) for name, value in CASES[case].items()}
    served = Served(fast_app)

    answers = [fast.get(path, headers=headers), flask.get(path, headers=headers)]

    assert served.by_flask == 0
    assert fast_path_of(flask_app) is None
    fast_answer, flask_answer = (comparable(answer) for answer in answers)
    assert fast_answer == flask_answer
    assert answers[0].status_code == (304 if case == "not modified" or "weak" in case else 200)
    if "X-Request-ID" in headers:
        assert answers[0].headers["X-Request-ID"] == "parity-check-1"
    else:
        assert re.fullmatch(r"[0-9a-f]{32}", answers[0].headers["X-Request-ID"])


@pytest.mark.parametrize(
    "request_args",
    [
        {"query_string": "fields=name"},
        {"headers": {"Origin": "https://shop.test"}},
        {"method": "HEAD"},
        {"data": b"{}", "content_type": "application/json"},
        {"path": "/v1/products/0{id}"},
    ],
    ids=["query string", "Origin", "HEAD", "a body", "leading zero"],
)
def test_anything_but_a_plain_get_goes_to_flask(make_app, product, request_args):
    app = make_app(cors_origins=("https://shop.test",))
    path = f"/v1/products/{product.id}"
    client = held(app, path)
    served = Served(app)
    args = {"method": "GET", **request_args, "path": request_args.get("path", path).format(id=product.id)}
    response = client.open(**args)
    assert served.by_flask == 1
    assert response.status_code == 200
    if "headers" in request_args:
        assert response.headers["Access-Control-Allow-Origin"] == "https://shop.test"


def test_misses_and_cached_404s_go_to_flask_and_hits_do_not(make_app, product):
    app = make_app()
    served = Served(app)
    client = app.test_client()
    path = f"/v1/products/{product.id}"
    states = [client.get(path).headers["X-Cache"] for _ in range(3)]
    assert states == ["MISS", "HIT", "HIT"]
    assert served.by_flask == 1  # the miss; then a hit read from Redis, then one held in the process
    missing = f"/v1/products/{product.id + 1000}"
    assert [client.get(missing).status_code for _ in range(3)] == [404, 404, 404]
    assert served.by_flask == 4
    assert client.get("/v1/products/99999999999").status_code == 404  # past MAX_INT: Flask's 404
    assert served.by_flask == 5


def test_a_write_in_another_process_is_seen_by_the_next_fast_path_read(make_app, product, auth):
    reader, writer = make_app(), make_app()
    path = f"/v1/products/{product.id}"
    client = held(reader, path)
    served = Served(reader)
    assert client.get(path).json["name"] == product.name and served.by_flask == 0
    patched = writer.test_client().patch(path, json={"name": "Renamed by another process"}, headers=auth)
    assert patched.status_code == 200
    after = client.get(path)
    assert after.json["name"] == "Renamed by another process"
    assert served.by_flask == 1  # the near cache had dropped it: Flask read it again


def test_the_budget_is_spent_once_per_request_whichever_path_answers(make_app, product):
    app = make_app(rate_limit_reads="5/minute")
    served = Served(app)
    client = app.test_client()
    path = f"/v1/products/{product.id}"
    app.extensions["shelf.cache_client"].ping()
    statuses = [client.get(path).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    assert served.by_flask == 2  # the miss and the 429
    refused = client.get(path)
    assert refused.status_code == 429 and refused.content_type == "application/problem+json"
    assert "Retry-After" in refused.headers


def test_it_logs_the_line_flask_would_and_counts_the_view(make_app, product, log_output):
    app = make_app()
    path = f"/v1/products/{product.id}"
    client = held(app, path)
    views = app.extensions["shelf.views"]
    before = views._counts[product.id]
    served = Served(app)
    response = client.get(path, headers={"X-Request-ID": "log-me"})
    assert served.by_flask == 0 and views._counts[product.id] == before + 1
    lines = [line for line in log_records(log_output()) if line.get("request_id") == "log-me"]
    assert len(lines) == 1
    line = lines[0]
    assert line["msg"] == "request" and line["logger"] == "shelf.request"
    assert (line["method"], line["path"], line["status"]) == ("GET", path, response.status_code)
    assert line["remote_addr"] == "127.0.0.1" and line["duration_ms"] >= 0


def test_it_sees_the_client_address_the_proxies_setting_gives(make_app, product, log_output):
    app = make_app(trusted_proxies=1)
    path = f"/v1/products/{product.id}"
    client = held(app, path)
    served = Served(app)
    client.get(path, headers={"X-Forwarded-For": "203.0.113.9", "X-Request-ID": "proxied"})
    assert served.by_flask == 0
    (line,) = [line for line in log_records(log_output()) if line.get("request_id") == "proxied"]
    assert line["remote_addr"] == "203.0.113.9"


@pytest.mark.parametrize("changes", [{"fast_path": False}, {"cache_enabled": False}], ids=["off", "no cache"])
def test_it_is_installed_only_when_there_is_a_cache_to_answer_from(make_app, changes):
    assert fast_path_of(make_app()) is not None
    assert fast_path_of(make_app(**changes)) is None


def test_without_a_near_cache_it_answers_hits_read_from_redis(make_app, product, redis_url):
    app = make_app(cache_local_entries=0)
    served = Served(app)
    client = app.test_client()
    path = f"/v1/products/{product.id}"
    assert client.get(path).headers["X-Cache"] == "MISS"
    responses = []
    sent = app_commands_sent(app, redis_url, lambda: responses.append(client.get(path)))
    assert responses[0].headers["X-Cache"] == "HIT" and served.by_flask == 1
    assert sent == [f"GET {app.extensions['shelf.region'].keys.product(product.id).entry}"]


@pytest.mark.parametrize("local_entries", [50_000, 0], ids=["near cache", "no near cache"])
def test_a_miss_handed_to_flask_reads_the_cache_once(make_app, product, redis_url, local_entries):
    app = make_app(cache_local_entries=local_entries)
    client = app.test_client()
    path = f"/v1/products/{product.id}"
    entry_key = app.extensions["shelf.region"].keys.product(product.id).entry
    responses = []
    sent = app_commands_sent(app, redis_url, lambda: responses.append(client.get(path)))
    assert responses[0].headers["X-Cache"] == "MISS"
    assert sent.count(f"GET {entry_key}") == 1  # the fast path's read, handed on; then the lease and fill


def test_an_error_in_it_is_answered_by_flask_with_the_budget_spent_once(
    make_app, product, log_output, monkeypatch
):
    app = make_app(rate_limit_reads="5/minute")
    path = f"/v1/products/{product.id}"
    client = held(app, path)  # two requests of the five
    expected = client.get(path, headers={"X-Request-ID": "fast"})  # the third, from the fast path
    served = Served(app)

    def broken(*_args):
        raise RuntimeError("injected")

    monkeypatch.setattr("api.fast_path._response", broken)
    response = client.get(path, headers={"X-Request-ID": "broken"})
    assert served.by_flask == 1
    assert response.status_code == 200 and response.get_data() == expected.get_data()
    assert response.headers["X-Cache"] == "HIT" and response.headers["X-Request-ID"] == "broken"
    assert expected.headers["RateLimit"].startswith('"reads";r=2;')
    assert response.headers["RateLimit"].startswith('"reads";r=1;')  # spent by the fast path, not again
    (failure,) = [line for line in log_records(log_output()) if line["msg"].startswith("fast path failed")]
    assert (
        failure["msg"] == f"fast path failed; Flask answers {path}"
        and "RuntimeError: injected" in failure["exc"]
    )
