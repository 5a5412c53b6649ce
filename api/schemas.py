"""marshmallow schemas: the v1 contract, in and out.

``*Create``/``*Update``/``*Query`` schemas are what ``.load()`` accepts
(unknown fields are rejected everywhere, strings are bounded, values are
normalized so equivalent requests load to equal dicts — the cache keys
depend on it). The plain schemas are what ``.dump()`` emits: only the
fields listed here ever leave the API.
"""

from __future__ import annotations

from decimal import Decimal

import marshmallow as ma
from marshmallow import fields, validate

from cache.metrics import Event as CacheEvent

from .currencies import ISO_4217

SLUG = r"^[a-z0-9]+(-[a-z0-9]+)*$"
SKU = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
MAX_PRICE = Decimal("9999999999.99")
MAX_INT = 2**31 - 1
SORTS = ("name", "price", "-price", "rating", "-rating", "newest")
MAX_ATTRIBUTES = 50
MAX_ATTRIBUTE_BYTES = 500


class Strict(ma.Schema):
    class Meta:
        unknown = ma.RAISE


def Slug(**kwargs):  # noqa: N802 - field factory reads like a field class
    return fields.String(validate=[validate.Length(1, 80), validate.Regexp(SLUG)], **kwargs)


def Text(max_len: int, min_len: int = 1, **kwargs):  # noqa: N802
    return fields.String(validate=validate.Length(min_len, max_len), **kwargs)


AMOUNT_DOC = {"type": "string", "pattern": r"^[0-9]{1,10}(\.[0-9]{1,2})?$", "example": "12.50"}
"""How amounts appear in the OpenAPI document: decimal strings, never floats."""


def Amount(**kwargs):  # noqa: N802 - field factory reads like a field class
    """An amount on the way out: a decimal string with two places, "12.50"."""
    return fields.Decimal(places=2, as_string=True, metadata=AMOUNT_DOC, **kwargs)


class Price(fields.Decimal):
    """A non-negative amount with at most two decimal places: a string ("12.50") or a JSON number."""

    def __init__(self, **kwargs):
        # Numeric bounds in the document (the validator's own would be emitted as strings).
        metadata = {**AMOUNT_DOC, "minimum": 0, "maximum": float(MAX_PRICE)}
        super().__init__(
            places=2, as_string=True, validate=validate.Range(0, MAX_PRICE), metadata=metadata, **kwargs
        )

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ma.ValidationError('Not a valid decimal; send a string like "12.50".')
        number = super()._deserialize(str(value), attr, data, **kwargs)
        if not number.is_finite() or -Decimal(str(value)).as_tuple().exponent > 2:
            raise ma.ValidationError("At most two decimal places.")
        return number


class Currency(fields.String):
    def _deserialize(self, value, attr, data, **kwargs):
        code = super()._deserialize(value, attr, data, **kwargs).upper()
        if code not in ISO_4217:
            raise ma.ValidationError("Not an ISO 4217 currency code.")
        return code


def _validate_attributes(value: dict) -> None:
    if len(value) > MAX_ATTRIBUTES:
        raise ma.ValidationError(f"At most {MAX_ATTRIBUTES} attributes.")
    for key, item in value.items():
        if not (1 <= len(key) <= 64):
            raise ma.ValidationError("Attribute names are 1 to 64 characters.")
        items = item if isinstance(item, list) else [item]
        if len(items) > 50 or not all(_is_scalar(i) for i in items):
            raise ma.ValidationError(
                f"Attribute {key!r} must be a string, number, boolean or a list of up to 50 of them."
            )
        if any(isinstance(i, str) and len(i) > MAX_ATTRIBUTE_BYTES for i in items):
            raise ma.ValidationError(f"Attribute {key!r} has a string over {MAX_ATTRIBUTE_BYTES} characters.")


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
    slug = Slug(required=True)
    name = Text(120, required=True)
    parent = Slug(allow_none=True, load_default=None, metadata={"description": "Parent category's slug."})


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
    sku = fields.String(required=True, validate=validate.Regexp(SKU))
    name = Text(200, required=True)
    slug = fields.String(validate=[validate.Length(1, 220), validate.Regexp(SLUG)])
    description = Text(10_000, min_len=0, load_default="")
    brand = Text(80, required=True)
    price = Price(required=True)
    currency = Currency(load_default="USD")
    stock = fields.Integer(strict=True, validate=validate.Range(0, MAX_INT), load_default=0)
    attributes = fields.Dict(keys=fields.String(), load_default=dict, validate=_validate_attributes)
    category = Slug(required=True, metadata={"description": "The category's slug."})
    is_active = fields.Boolean(load_default=True)

    @ma.post_load
    def strip_text(self, data, **_kwargs):
        for key in ("name", "brand"):
            if key in data:
                data[key] = data[key].strip()
                if not data[key]:
                    raise ma.ValidationError("Must not be blank.", field_name=key)
        return data


class ProductUpdateSchema(ProductCreateSchema):
    """Every field optional; only what is sent changes."""

    def __init__(self, *args, **kwargs):
        # partial loading also skips load_default, so absent fields stay absent.
        super().__init__(*args, partial=True, **kwargs)


class ProductListQuerySchema(Strict):
    category = Slug(load_default=None)
    brand = Text(80, load_default=None)
    min_price = Price(load_default=None)
    max_price = Price(load_default=None)
    in_stock = fields.Boolean(load_default=None)
    q = Text(200, load_default=None)
    sort = fields.String(load_default="newest", validate=validate.OneOf(SORTS))
    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))
    cursor = Text(1000, load_default=None)

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
    cursor = Text(1000, load_default=None)


# --- admin --------------------------------------------------------------------------------

CACHE_RESOURCES = ("product", "product_list", "category_tree", "category", "reviews")


WARM_SCOPES = ("popular", "category", "ids", "all")
RECOMPUTE_SCOPES = ("all", "product", "category")


class WarmRequestSchema(Strict):
    scope = fields.String(required=True, validate=validate.OneOf(WARM_SCOPES))
    limit = fields.Integer(
        load_default=None,
        validate=validate.Range(1, 1_000_000),
        metadata={"description": "At most this many products (popular: default 5000)."},
    )
    category = Slug(load_default=None, metadata={"description": "With scope=category."})
    ids = fields.List(
        fields.Integer(strict=True, validate=validate.Range(1, MAX_INT)),
        load_default=None,
        validate=validate.Length(1, 10_000),
        metadata={"description": "With scope=ids."},
    )

    @ma.validates_schema
    def scope_needs(self, data, **_kwargs):
        if data["scope"] == "category" and not data["category"]:
            raise ma.ValidationError("Required with scope=category.", field_name="category")
        if data["scope"] == "ids" and not data["ids"]:
            raise ma.ValidationError("Required with scope=ids.", field_name="ids")


class RecomputeRequestSchema(Strict):
    scope = fields.String(required=True, validate=validate.OneOf(RECOMPUTE_SCOPES))
    product_id = fields.Integer(strict=True, load_default=None, validate=validate.Range(1, MAX_INT))
    category = Slug(load_default=None)

    @ma.validates_schema
    def scope_needs(self, data, **_kwargs):
        if data["scope"] == "product" and data["product_id"] is None:
            raise ma.ValidationError("Required with scope=product.", field_name="product_id")
        if data["scope"] == "category" and not data["category"]:
            raise ma.ValidationError("Required with scope=category.", field_name="category")


class JobSchema(ma.Schema):
    id = fields.String()
    kind = fields.String()
    status = fields.String(
        metadata={"description": "queued, scheduled, deferred, started, finished or failed"}
    )
    enqueued_at = fields.DateTime(allow_none=True)
    started_at = fields.DateTime(allow_none=True)
    ended_at = fields.DateTime(allow_none=True)
    progress = fields.Dict(allow_none=True)
    result = fields.Dict(allow_none=True)
    error = fields.String(allow_none=True)
    retries = fields.Integer(metadata={"description": "Retries used so far (at most 3)."})


class CachePurgeSchema(Strict):
    resource = fields.String(
        load_default=None,
        validate=validate.OneOf(CACHE_RESOURCES),
        metadata={"description": "Purge only this resource's entries; all of Shelf's when absent."},
    )


class CachePurgedSchema(ma.Schema):
    deleted = fields.Integer()


CacheCountersSchema = ma.Schema.from_dict(
    {event.value: fields.Integer() for event in CacheEvent} | {"hit_ratio": fields.Float(allow_none=True)},
    name="CacheCountersSchema",
)
"""One integer per cache event, built from the events themselves: every counter the stats count is shown."""


class CacheStatsSchema(ma.Schema):
    enabled = fields.Boolean()
    breaker = fields.String(metadata={"description": "closed, half_open or open (this process)"})
    outbox_pending = fields.Integer(metadata={"description": "Invalidations not yet applied to Redis"})
    resources = fields.Dict(keys=fields.String(), values=fields.Nested(CacheCountersSchema))


# --- errors and ops -----------------------------------------------------------------------


class FieldErrorSchema(ma.Schema):
    field = fields.String()
    location = fields.String(data_key="in")
    message = fields.String()


class ProblemSchema(ma.Schema):
    """RFC 9457 problem details."""

    type = fields.String()
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    errors = fields.List(fields.Nested(FieldErrorSchema))
    request_id = fields.String()


class HealthSchema(ma.Schema):
    status = fields.String()
    checks = fields.Dict(keys=fields.String(), values=fields.String())
