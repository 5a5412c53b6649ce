"""The OpenAPI document states every rule the input schemas enforce, and the API keeps to it: what
the document allows is accepted, and what the API refuses the document refuses too."""

from __future__ import annotations

import re

import pytest

from catalog.schemas import MAX_CURSOR, NOT_BLANK, WHITESPACE
from tests.factories import make_category, make_product


@pytest.fixture
def category(engine):
    return make_category(engine)


@pytest.fixture
def spec(client):
    return client.get("/openapi.json").get_json()


def new_product(category, **overrides) -> dict:
    base = {"sku": "SKU-1", "name": "Lamp", "brand": "Acme", "price": "12.50", "category": category.slug}
    return base | overrides


WRITE_SCHEMAS = ("ProductCreate", "ProductUpdate", "CategoryCreate", "CategoryUpdate", "ReviewCreate")


@pytest.mark.parametrize("name", WRITE_SCHEMAS)
def test_every_field_of_a_write_is_bounded_in_the_document(spec, name):
    for field, schema in spec["components"]["schemas"][name]["properties"].items():
        branches = schema.get("oneOf", [schema])
        for branch in branches:
            kind = branch["type"]
            bounded = {
                "string": ("maxLength", "pattern", "enum"),
                "integer": ("maximum",),
                "number": ("maximum",),
                "object": ("maxProperties",),
                "boolean": ("type",),
            }[kind]
            assert any(key in branch for key in bounded), (name, field, branch)


def test_the_document_states_attribute_rules(spec):
    attributes = spec["components"]["schemas"]["ProductCreate"]["properties"]["attributes"]
    assert attributes["maxProperties"] == 50
    assert attributes["propertyNames"]["maxLength"] == 64
    values = attributes["additionalProperties"]["anyOf"]
    assert {"type": "string", "maxLength": 500, "pattern": "^[^\\x00]*$"} in values
    assert any(v.get("type") == "array" and v["maxItems"] == 50 for v in values)


@pytest.mark.parametrize(
    ("price", "stored"), [("12.50", "12.50"), (12.5, "12.50"), (7, "7.00"), (1e2, "100.00"), (0.07, "0.07")]
)
def test_a_price_is_a_decimal_string_or_a_json_number_as_documented(client, auth, category, price, stored):
    response = client.post("/v1/products", json=new_product(category, price=price), headers=auth)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["price"] == stored


@pytest.mark.parametrize("price", [" 12.50", "-0", "1e2", "12.345", 12.345, -1, "12345678901", True, None])
def test_a_price_the_document_refuses_is_422(client, auth, category, price):
    response = client.post("/v1/products", json=new_product(category, price=price), headers=auth)
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["errors"][0]["field"] == "price"


def test_the_document_gives_price_both_forms(spec):
    price = spec["components"]["schemas"]["ProductCreate"]["properties"]["price"]
    assert [branch["type"] for branch in price["oneOf"]] == ["string", "number"]
    assert price["oneOf"][1]["multipleOf"] == 0.01


@pytest.mark.parametrize("flag", [0, 1, "true", "yes"])
def test_is_active_is_a_json_boolean_as_documented(client, auth, category, flag):
    response = client.post("/v1/products", json=new_product(category, is_active=flag), headers=auth)
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "is_active"


def test_currency_is_documented_as_its_codes(spec):
    currency = spec["components"]["schemas"]["ProductCreate"]["properties"]["currency"]
    assert {"USD", "EUR", "JPY"} <= set(currency["enum"])


def test_the_blank_pattern_names_exactly_what_strip_removes():
    spaces = {chr(code) for code in range(0x110000) if chr(code).isspace()}
    assert {chr(code) for code in range(0x110000) if re.fullmatch(f"[{WHITESPACE}]", chr(code))} == spaces
    assert not re.match(NOT_BLANK, "\x1e\u3000 ")
    assert re.match(NOT_BLANK, " \x1e a")


@pytest.mark.parametrize("name", ["   ", "\x1e\x1f", "\u3000"])
def test_a_blank_name_is_422(client, auth, category, name):
    response = client.post("/v1/products", json=new_product(category, name=name), headers=auth)
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "name"


def test_the_longest_cursor_shelf_issues_is_accepted_back(client, engine, category):
    """A page sorted by a 200-character name of control characters (6 bytes each in JSON) ends with a
    cursor of about 1,700 characters: the documented maximum must take it."""
    for index in range(2):
        make_product(engine, category, name="\x01" * 199 + str(index))
    first = client.get("/v1/products?sort=name&limit=1").get_json()
    assert 1_000 < len(first["next_cursor"]) <= MAX_CURSOR
    response = client.get(f"/v1/products?sort=name&limit=1&cursor={first['next_cursor']}")
    assert response.status_code == 200, response.get_json()
    assert len(response.get_json()["items"]) == 1


def test_the_cursor_is_documented_with_its_shape_and_bound(spec):
    cursor = next(p for p in spec["paths"]["/v1/products"]["get"]["parameters"] if p["name"] == "cursor")
    assert cursor["schema"]["maxLength"] == MAX_CURSOR
    assert cursor["schema"]["pattern"]
