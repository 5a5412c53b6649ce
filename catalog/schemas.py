"""marshmallow schemas: the v1 contract, in and out.

``*Create``/``*Update``/``*Query`` schemas are what ``.load()`` accepts
(unknown fields are rejected everywhere, strings are bounded, values are
normalized so equivalent requests load to equal dicts — the cache keys
depend on it). The plain schemas are what ``.dump()`` emits: only the
fields listed here ever leave the API. The admin, jobs and error schemas,
which only the HTTP API uses, are ``api.schemas``.
"""

from __future__ import annotations

import re
from decimal import Decimal

import marshmallow as ma
from marshmallow import fields, validate

from .currencies import ISO_4217
from .models import MAX_INT

SLUG = r"^[a-z0-9]+(-[a-z0-9]+)*$"
SKU = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
NO_NUL = r"^[^\x00]*$"
"""Free text: anything but NUL, which PostgreSQL stores in no text column (``input_guards`` answers it)."""
WHITESPACE = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
"""What ``str.strip()`` removes, spelled out: ``\\s`` means other things to other regex engines."""
NOT_BLANK = rf"^[{WHITESPACE}]*[^{WHITESPACE}\x00][^\x00]*$"
"""Holds something besides whitespace, and no NUL (names and brands are stored stripped)."""
AMOUNT = r"^[0-9]{1,10}(\.[0-9]{1,2})?$"
MAX_PRICE = Decimal("9999999999.99")
SORTS = ("name", "price", "-price", "rating", "-rating", "newest")
MAX_ATTRIBUTES = 50
MAX_ATTRIBUTE_NAME = 64
MAX_ATTRIBUTE_LIST = 50
MAX_ATTRIBUTE_BYTES = 500
OPENAPI_SCHEMA = "openapi_schema"
"""Field metadata key: the field's shape in the OpenAPI document, in place of the one apispec derives
(``api.openapi.documented_shape``); for fields whose rules apispec cannot see."""
CURSOR = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"
MAX_CURSOR = 2048
"""A cursor is base64url(payload).base64url(signature); the longest Shelf issues, a page sorted by a
200-character name of control characters (6 bytes each in JSON), is about 1,700 characters."""


class Strict(ma.Schema):
    class Meta:
        unknown = ma.RAISE


def Slug(**kwargs):  # noqa: N802 - field factory reads like a field class
    return fields.String(validate=[validate.Length(1, 80), validate.Regexp(SLUG)], **kwargs)


def Text(max_len: int, min_len: int = 1, **kwargs):  # noqa: N802
    no_nul = validate.Regexp(NO_NUL, error="Must not contain NUL characters.")
    return fields.String(validate=[validate.Length(min_len, max_len), no_nul], **kwargs)


def Name(max_len: int, **kwargs):  # noqa: N802
    """Text that must hold more than whitespace; ``strip_names`` stores it stripped."""
    not_blank = validate.Regexp(NOT_BLANK, error="Must not be blank.")
    return fields.String(validate=[validate.Length(1, max_len), not_blank], **kwargs)


def Cursor(**kwargs):  # noqa: N802
    """An opaque page cursor, as ``next_cursor`` gave it."""
    shape = [validate.Length(1, MAX_CURSOR), validate.Regexp(CURSOR, error="Malformed cursor.")]
    return fields.String(validate=shape, load_default=None, **kwargs)


AMOUNT_DOC = {"type": "string", "pattern": AMOUNT, "example": "12.50"}
"""How amounts appear in the OpenAPI document: decimal strings, never floats."""


def Amount(**kwargs):  # noqa: N802 - field factory reads like a field class
    """An amount on the way out: a decimal string with two places, "12.50"."""
    return fields.Decimal(places=2, as_string=True, metadata=AMOUNT_DOC, **kwargs)


class Price(fields.Decimal):
    """A non-negative amount with at most two decimal places: a string ("12.50") or, in a JSON body,
    a number (12.5). A query string's value is always the string form."""

    def __init__(self, numbers: bool = True, **kwargs):
        self.numbers = numbers
        string = {**AMOUNT_DOC, "description": "0 to 9999999999.99, at most two decimal places."}
        number = {"type": "number", "minimum": 0, "maximum": float(MAX_PRICE), "multipleOf": 0.01}
        schema = {"oneOf": [string, number]} if numbers else string
        super().__init__(
            places=2,
            as_string=True,
            validate=validate.Range(0, MAX_PRICE),
            metadata={OPENAPI_SCHEMA: schema},
            **kwargs,
        )

    def _deserialize(self, value, attr, data, **kwargs):
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not (isinstance(value, str) or (self.numbers and is_number)):
            raise ma.ValidationError('Not a valid amount; send a string like "12.50".')
        text = str(value)
        if is_number and "e" in text.lower():  # 1e-05 or 1e+20: the digits decide, as in JSON
            text = format(Decimal(text), "f")
        if is_number and text.endswith(".0"):
            text = text[:-2]
        if not re.fullmatch(AMOUNT, text):
            raise ma.ValidationError("Up to 10 digits, at most two decimal places, no sign.")
        return super()._deserialize(text, attr, data, **kwargs)


class Flag(fields.Boolean):
    """A JSON boolean, ``true`` or ``false``: not 1, "yes" or "on", which the document does not allow."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class Currency(fields.String):
    """An ISO 4217 code; lower case is accepted and stored upper case."""

    def __init__(self, **kwargs):
        doc = {"type": "string", "enum": sorted(ISO_4217), "description": "ISO 4217, any case."}
        super().__init__(metadata={OPENAPI_SCHEMA: doc}, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        code = super()._deserialize(value, attr, data, **kwargs).upper()
        if code not in ISO_4217:
            raise ma.ValidationError("Not an ISO 4217 currency code.")
        return code


def _validate_attributes(value: dict) -> None:
    if len(value) > MAX_ATTRIBUTES:
        raise ma.ValidationError(f"At most {MAX_ATTRIBUTES} attributes.")
    for key, item in value.items():
        if not (1 <= len(key) <= MAX_ATTRIBUTE_NAME):
            raise ma.ValidationError(f"Attribute names are 1 to {MAX_ATTRIBUTE_NAME} characters.")
        items = item if isinstance(item, list) else [item]
        if len(items) > MAX_ATTRIBUTE_LIST or not all(_is_scalar(i) for i in items):
            raise ma.ValidationError(
                f"Attribute {key!r} must be a string, number, boolean, null or a list of up to"
                f" {MAX_ATTRIBUTE_LIST} of them."
            )
        if any(isinstance(i, str) and len(i) > MAX_ATTRIBUTE_BYTES for i in items):
            raise ma.ValidationError(f"Attribute {key!r} has a string over {MAX_ATTRIBUTE_BYTES} characters.")


_ATTRIBUTE_SCALAR = {
    "nullable": True,
    "anyOf": [
        {"type": "string", "maxLength": MAX_ATTRIBUTE_BYTES, "pattern": NO_NUL},
        {"type": "number"},
        {"type": "boolean"},
    ],
}
ATTRIBUTES_DOC = {
    "type": "object",
    "maxProperties": MAX_ATTRIBUTES,
    # JSON Schema's propertyNames: OpenAPI 3.0 tools that do not know it skip it; the description says it.
    "propertyNames": {"minLength": 1, "maxLength": MAX_ATTRIBUTE_NAME, "pattern": NO_NUL},
    "additionalProperties": {
        "nullable": True,
        "anyOf": [
            *_ATTRIBUTE_SCALAR["anyOf"],
            {"type": "array", "maxItems": MAX_ATTRIBUTE_LIST, "items": _ATTRIBUTE_SCALAR},
        ],
    },
    "description": (
        f"Up to {MAX_ATTRIBUTES} attributes, names 1 to {MAX_ATTRIBUTE_NAME} characters; each a string"
        f" (up to {MAX_ATTRIBUTE_BYTES} characters), number, boolean, null or a list of up to"
        f" {MAX_ATTRIBUTE_LIST} of them."
    ),
}


def _is_scalar(value) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


# --- categories ---------------------------------------------------------------------------


class CategoryRefSchema(ma.Schema):
    id = fields.Integer()
    slug = fields.String()
    name = fields.String()


class CategoryStatsSchema(ma.Schema):
    product_count = fields.Integer()
    review_count = fields.Integer()
    min_price = Amount(allow_none=True)
    max_price = Amount(allow_none=True)
    avg_price = Amount(allow_none=True)
    average_rating = fields.Float(allow_none=True)
    computed_at = fields.DateTime(allow_none=True)


class CategoryNodeSchema(CategoryRefSchema):
    product_count = fields.Integer()
    children = fields.List(fields.Nested(lambda: CategoryNodeSchema()), dump_default=list)


class CategoryTreeSchema(ma.Schema):
    items = fields.List(fields.Nested(CategoryNodeSchema))


class CategorySchema(CategoryRefSchema):
    parent = fields.Nested(CategoryRefSchema, allow_none=True)
    children = fields.List(fields.Nested(CategoryRefSchema))
    stats = fields.Nested(CategoryStatsSchema)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class CategoryCreateSchema(Strict):
    slug = Slug(required=True, metadata={"example": "e-readers"})
    name = Text(120, required=True, metadata={"example": "E-readers"})
    parent = Slug(
        allow_none=True,
        load_default=None,
        metadata={"description": "Parent category's slug (a top-level one).", "example": "electronics"},
    )


class CategoryUpdateSchema(Strict):
    slug = Slug()
    name = Text(120)
    parent = Slug(allow_none=True)


# --- products -----------------------------------------------------------------------------


class RatingSchema(ma.Schema):
    average = fields.Float(allow_none=True)
    count = fields.Integer()


class ProductSchema(ma.Schema):
    id = fields.Integer()
    sku = fields.String()
    name = fields.String()
    slug = fields.String()
    description = fields.String()
    brand = fields.String()
    price = Amount()
    currency = fields.String()
    stock = fields.Integer()
    in_stock = fields.Boolean()
    attributes = fields.Dict()
    category = fields.Nested(CategoryRefSchema)
    rating = fields.Nested(RatingSchema)
    version = fields.Integer()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class ProductPageSchema(ma.Schema):
    items = fields.List(fields.Nested(ProductSchema))
    next_cursor = fields.String(allow_none=True)


class ProductCreateSchema(Strict):
    sku = fields.String(required=True, validate=validate.Regexp(SKU), metadata={"example": "ACME-1001"})
    name = Name(200, required=True, metadata={"example": "Trail running shoe"})
    slug = fields.String(validate=[validate.Length(1, 220), validate.Regexp(SLUG)])
    description = Text(10_000, min_len=0, load_default="")
    brand = Name(80, required=True, metadata={"example": "Acme"})
    price = Price(required=True)
    currency = Currency(load_default="USD")
    stock = fields.Integer(strict=True, validate=validate.Range(0, MAX_INT), load_default=0)
    attributes = fields.Dict(
        keys=fields.String(),
        load_default=dict,
        validate=_validate_attributes,
        metadata={OPENAPI_SCHEMA: ATTRIBUTES_DOC},
    )
    category = Slug(
        required=True, metadata={"description": "The category's slug.", "example": "headphones-audio"}
    )
    is_active = Flag(load_default=True)

    @ma.post_load
    def strip_names(self, data, **_kwargs):
        for key in ("name", "brand"):
            if key in data:
                data[key] = data[key].strip()  # never blank: the fields' NOT_BLANK pattern
        return data


class ProductUpdateSchema(ProductCreateSchema):
    """Every field optional; only what is sent changes."""

    def __init__(self, *args, **kwargs):
        # partial loading also skips load_default, so absent fields stay absent.
        super().__init__(*args, partial=True, **kwargs)


class ProductListQuerySchema(Strict):
    category = Slug(load_default=None)
    brand = Text(80, load_default=None)
    min_price = Price(numbers=False, load_default=None)
    max_price = Price(numbers=False, load_default=None)
    in_stock = fields.Boolean(load_default=None)
    q = Text(200, load_default=None)
    sort = fields.String(load_default="newest", validate=validate.OneOf(SORTS))
    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))
    cursor = Cursor()

    @ma.post_load
    def normalize(self, data, **_kwargs):
        if data["brand"] is not None:
            data["brand"] = data["brand"].strip().casefold() or None
        if data["q"] is not None:
            data["q"] = " ".join(data["q"].casefold().split()) or None
        low, high = data["min_price"], data["max_price"]
        if low is not None and high is not None and low > high:
            raise ma.ValidationError("min_price must not exceed max_price.", field_name="min_price")
        return data


# --- reviews ------------------------------------------------------------------------------


class ReviewSchema(ma.Schema):
    id = fields.Integer()
    product_id = fields.Integer()
    rating = fields.Integer()
    title = fields.String()
    body = fields.String()
    author = fields.String()
    created_at = fields.DateTime()


class ReviewPageSchema(ma.Schema):
    items = fields.List(fields.Nested(ReviewSchema))
    next_cursor = fields.String(allow_none=True)


class ReviewCreateSchema(Strict):
    rating = fields.Integer(strict=True, required=True, validate=validate.Range(1, 5))
    title = Text(200, required=True)
    body = Text(5000, min_len=0, load_default="")
    author = Text(80, required=True)


class PageQuerySchema(Strict):
    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))
    cursor = Cursor()


# --- admin --------------------------------------------------------------------------------
