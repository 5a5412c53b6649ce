"""The admin, jobs and error schemas: what only the HTTP API takes and answers.

The catalog's own contract (products, categories, reviews, list queries) is ``catalog.schemas``,
which the core renders with; these describe operations on the running service.
"""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from cache.metrics import Event as CacheEvent
from catalog import resources
from catalog.models import MAX_INT
from catalog.schemas import Slug, Strict

CACHE_RESOURCES = resources.NAMES


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
