"""Hostile input: deep, odd or unstorable JSON and query strings are 4xx problems, never 500s."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from api.guards.input_guards import MAX_JSON_DEPTH, json_depth
from tests.factories import make_category, make_product

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def category(engine):
    return make_category(engine)


@pytest.fixture
def product(engine, category):
    return make_product(engine, category)


@pytest.fixture
def client(make_app):
    app = make_app(rate_limits_enabled=False)
    app.config["PROPAGATE_EXCEPTIONS"] = False  # a crash must show up as the 500 a client would get
    return app.test_client()


def new_product(category, **overrides) -> dict:
    return {
        "sku": "SKU-1",
        "name": "Kettle",
        "brand": "Acme",
        "price": "19.99",
        "category": category.slug,
    } | overrides


def raw_product(category, extra: str) -> str:
    """A product body as text, with ``extra`` spliced in as JSON the json module would not write."""
    return f'{{"sku":"SKU-2","name":"K","brand":"A","price":"1","category":"{category.slug}",{extra}}}'


def assert_problem(response, status: int, field: str, location: str = "json") -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status and body["type"] == "about:blank"
    assert {"field": field, "in": location} in [{"field": e["field"], "in": e["in"]} for e in body["errors"]]
    return body


def product_count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM products")).scalar_one()


# --- nesting ------------------------------------------------------------------------------------


def test_depth_is_counted_without_parsing_and_ignores_brackets_in_strings():
    assert json_depth(b"{}") == 1 and json_depth(b'{"a": [1, {"b": []}]}') == 4
    assert json_depth(b'{"a": "[[[[{{{{", "b": "\\"[[["}') == 1
    assert json_depth(b"3") == 0


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH + 1, 100, 100_000])
def test_a_deeply_nested_body_is_422_not_a_crash(client, auth, levels):
    body = "[" * levels + "]" * levels
    response = client.post("/v1/products", data=body, headers={**auth, **JSON})
    problem = assert_problem(response, 422, "_")
    assert str(MAX_JSON_DEPTH) in problem["errors"][0]["message"]


def test_bodies_no_view_would_parse_are_left_alone(client, auth):
    deep = "[" * 100 + "]" * 100
    assert client.post("/v1/products", data=deep, headers=JSON).status_code == 401
    assert (
        client.post("/v1/products", data=deep, headers={**JSON, "Authorization": "Bearer wrong"}).status_code
        == 401
    )
    assert client.post("/v1/no-such-thing", data=deep, headers={**auth, **JSON}).status_code == 404


def test_nesting_inside_a_field_is_caught_too(client, auth, category):
    deep = "[" * 100 + "]" * 100
    response = client.post(
        "/v1/products", data=raw_product(category, f'"attributes":{{"a":{deep}}}'), headers={**auth, **JSON}
    )
    assert_problem(response, 422, "_")


# --- text PostgreSQL cannot store ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": "Ket\x00tle"}, "name"),
        ({"description": "a\x00b"}, "description"),
        ({"brand": "\x00"}, "brand"),
        ({"attributes": {"color": "re\x00d"}}, "attributes.color"),
        ({"attributes": {"sizes": ["s", "m\x00"]}}, "attributes.sizes.1"),
        ({"attributes": {"co\x00lor": "red"}}, "attributes.co\\0lor"),
        ({"name": "\ud800"}, "name"),
    ],
    ids=["name", "description", "brand", "attribute", "attribute-list", "attribute-name", "lone-surrogate"],
)
def test_nul_and_unpaired_surrogates_are_422_and_nothing_is_written(
    client, auth, engine, category, overrides, field
):
    response = client.post("/v1/products", json=new_product(category, **overrides), headers=auth)
    assert_problem(response, 422, field)
    assert product_count(engine) == 0


def test_nul_in_every_write_is_caught(client, auth, product):
    patch = client.patch(f"/v1/products/{product.id}", json={"name": "x\x00"}, headers=auth)
    assert_problem(patch, 422, "name")
    review = {"rating": 5, "title": "Good\x00", "author": "Ann"}
    assert_problem(client.post(f"/v1/products/{product.id}/reviews", json=review, headers=auth), 422, "title")
    category = {"slug": "kettles", "name": "Kettles\x00"}
    assert_problem(client.post("/v1/categories", json=category, headers=auth), 422, "name")


def test_a_raw_control_character_is_not_json(client, auth, category):
    body = json.dumps(new_product(category)).replace("Kettle", "Ket\x00tle")
    assert_problem(client.post("/v1/products", data=body, headers={**auth, **JSON}), 400, "_")


@pytest.mark.parametrize("param", ["brand", "q", "category", "cursor"])
def test_nul_in_a_query_value_is_400(client, param):
    assert_problem(client.get(f"/v1/products?{param}=a%00b"), 400, param, "query")


def test_nul_in_the_path_is_400(client):
    assert_problem(client.get("/v1/categories/a%00b"), 400, "_", "path")


# --- numbers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ('"attributes":{"n":100000000000000000000}', "attributes.n"),
        ('"attributes":{"n":%s}' % ("9" * 5000), "attributes.n"),
        ('"attributes":{"n":-9223372036854775809}', "attributes.n"),
        ('"attributes":{"n":1e309}', "attributes.n"),
        ('"stock":%s' % ("9" * 40), "stock"),
        ('"attributes":{"n":[1, -1e400]}', "attributes.n.1"),
    ],
    ids=[
        "int-over-64-bits",
        "int-5000-digits",
        "int-under-64-bits",
        "float-1e309",
        "stock-huge",
        "in-a-list",
    ],
)
def test_numbers_that_cannot_be_stored_are_422(client, auth, category, extra, field):
    response = client.post("/v1/products", data=raw_product(category, extra), headers={**auth, **JSON})
    assert_problem(response, 422, field)


def test_64_bit_integers_and_ordinary_floats_are_fine(client, auth, category):
    extra = '"attributes":{"big":9223372036854775807,"small":-9223372036854775808,"f":1.5e300}'
    response = client.post("/v1/products", data=raw_product(category, extra), headers={**auth, **JSON})
    assert response.status_code == 201, response.get_data(as_text=True)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(client, auth, category, constant):
    response = client.post(
        "/v1/products",
        data=raw_product(category, f'"attributes":{{"n":{constant}}}'),
        headers={**auth, **JSON},
    )
    body = assert_problem(response, 400, "_")
    assert "is not JSON" in body["errors"][0]["message"]


@pytest.mark.parametrize("price", ["1e309", "NaN", "Infinity", "1e5000"])
def test_price_strings_out_of_range_are_422(client, auth, category, price):
    response = client.post("/v1/products", json=new_product(category, price=price), headers=auth)
    assert_problem(response, 422, "price")


@pytest.mark.parametrize("value", ["1e309", "nan", "-inf", "1e999999", "9" * 5000])
def test_price_filters_out_of_range_are_400(client, value):
    assert_problem(client.get(f"/v1/products?min_price={value}"), 400, "min_price", "query")


def test_a_huge_page_size_or_id_is_not_a_crash(client):
    assert_problem(client.get("/v1/products?limit=" + "9" * 5000), 400, "limit", "query")
    assert client.get("/v1/products/" + "9" * 40).status_code == 404
    assert client.get("/v1/products/-1").status_code == 404


# --- keys, encodings, lengths -------------------------------------------------------------------


def test_a_repeated_key_is_422(client, auth, engine, category):
    body = raw_product(category, '"sku":"SKU-3"')  # "sku" twice: which one counts is parser-dependent
    assert_problem(client.post("/v1/products", data=body, headers={**auth, **JSON}), 422, "sku")
    assert product_count(engine) == 0


def test_invalid_utf8_in_the_body_is_400(client, auth):
    response = client.post("/v1/products", data=b'{"sku": "\xff\xfe"}', headers={**auth, **JSON})
    assert_problem(response, 400, "_")


def test_invalid_utf8_in_the_query_string_is_replaced_not_a_crash(client):
    response = client.get("/v1/products?brand=%ff%fe")
    assert response.status_code == 200 and response.get_json()["items"] == []


def test_a_latin1_charset_is_read_as_utf8(client, auth, category):
    """RFC 8259: JSON is UTF-8; the charset parameter changes nothing."""
    ascii_body = json.dumps(new_product(category)).encode()
    latin1 = {**auth, "Content-Type": "application/json; charset=latin-1"}
    assert client.post("/v1/products", data=ascii_body, headers=latin1).status_code == 201
    accented = json.dumps(new_product(category, sku="SKU-9", name="Café"), ensure_ascii=False)
    assert_problem(client.post("/v1/products", data=accented.encode("latin-1"), headers=latin1), 400, "_")


@pytest.mark.parametrize("param", ["q", "brand", "category", "cursor", "sort"])
def test_an_over_long_query_value_is_400(client, param):
    assert_problem(client.get(f"/v1/products?{param}=" + "a" * 5_000), 400, param, "query")


def test_a_10k_character_field_is_422(client, auth, category):
    response = client.post("/v1/products", json=new_product(category, name="a" * 10_000), headers=auth)
    assert_problem(response, 422, "name")
