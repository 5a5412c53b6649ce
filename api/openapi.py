"""flask-smorest glue: the Api and Blueprint Shelf's views are declared with.

Three changes to the defaults: query strings are strict (unknown or repeated
parameters are rejected, since cache keys are built only from validated
parameters), every documented error response is problem+json, and a field
whose metadata carries ``schemas.OPENAPI_SCHEMA`` is documented with that
shape (a price is a string or a number; attributes are bounded), so the
document states every rule the schemas enforce.
"""

from __future__ import annotations

import http

import apispec
import flask_smorest
import marshmallow as ma
from flask_smorest.utils import prepare_response
from webargs.flaskparser import FlaskParser

from catalog.schemas import OPENAPI_SCHEMA

from . import flask_cache
from .docs_page import ASSETS_URL
from .errors import PROBLEM_MIMETYPE
from .guards.request_guards import MAX_TARGET_BYTES
from .schemas import ProblemSchema


class StrictParser(FlaskParser):
    DEFAULT_UNKNOWN_BY_LOCATION = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": None,
        "querystring": None,
    }

    def load_querystring(self, req, schema):
        repeated = sorted({key for key in req.args if len(req.args.getlist(key)) > 1})
        if repeated:
            raise ma.ValidationError({key: ["Give this parameter once."] for key in repeated})
        return super().load_querystring(req, schema)


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = StrictParser()


SHAPE_KEYS = ("type", "format", "pattern", "enum", "example", "minimum", "maximum", "x-minimum", "x-maximum")
SHAPE_KEYS += ("minLength", "maxLength", "additionalProperties")


def documented_shape(self, field, ret, **_kwargs) -> dict:
    """An apispec attribute function: the field's own ``OPENAPI_SCHEMA`` replaces the derived shape
    (default, nullable and description stay)."""
    shape = field.metadata.get(OPENAPI_SCHEMA)
    if shape is None:
        return {}
    for key in SHAPE_KEYS:
        ret.pop(key, None)
    return dict(shape)


class BoundedRequestLine(apispec.BasePlugin):
    """Every operation may answer 414: the request target is bounded for all of them."""

    def operation_helper(self, path=None, operations=None, **_kwargs):
        for operation in (operations or {}).values():
            operation.setdefault("responses", {}).setdefault(414, "REQUEST_URI_TOO_LONG")


DOCUMENT_KEY = "openapi.json"
DOCUMENT_SECONDS = 60
"""How long the cached OpenAPI document is fresh (then stale for as long again while one caller
re-renders it): also how long a deploy that changes the API may serve the previous document."""


class Api(flask_smorest.Api):
    ERROR_SCHEMA = ProblemSchema

    def _init_spec(self, *, extra_plugins=None, **kwargs):
        super()._init_spec(extra_plugins=[*(extra_plugins or ()), BoundedRequestLine()], **kwargs)
        self.ma_plugin.converter.add_attribute_function(documented_shape)

    def _register_responses(self):
        for status in http.HTTPStatus:
            response = {"description": status.phrase}
            content_type = self.DEFAULT_RESPONSE_CONTENT_TYPE
            if status >= 400:
                response["schema"] = self.ERROR_SCHEMA
                content_type = PROBLEM_MIMETYPE
            if status == http.HTTPStatus.REQUEST_URI_TOO_LONG:
                response["description"] = URI_TOO_LONG
            prepare_response(response, self.spec, content_type)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Error", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_MIMETYPE)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)

    def _openapi_json(self):
        """The document through Flask-Caching over Shelf's cache (api.flask_cache): rendering it
        (57 KB of JSON) takes milliseconds and it changes only with a deploy, so one worker renders
        it per DOCUMENT_SECONDS and every other is served from the near cache or Redis."""
        render = super()._openapi_json
        return flask_cache.cache.cached(timeout=DOCUMENT_SECONDS, key_prefix=DOCUMENT_KEY)(render)()

    def handle_http_exception(self, error):  # our own handler in api.errors renders errors
        from .errors import handle_http_exception

        return handle_http_exception(error)


URI_TOO_LONG = f"URI Too Long: the path and query string are over {MAX_TARGET_BYTES} bytes."

DESCRIPTION = f"""A read-heavy product catalog API. Writes need a bearer token.

Every request: the path and query string together are at most {MAX_TARGET_BYTES} bytes as sent
(percent-encoded); a longer one is a 414 problem. No string, in a body or a query, may hold a NUL
character or an unpaired surrogate; a JSON body nests at most 32 levels and its integers fit in 64
bits. Every error is `application/problem+json` (RFC 9457)."""

OPENAPI_CONFIG = {
    "API_TITLE": "Shelf",
    "API_VERSION": "v1",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/",
    "OPENAPI_JSON_PATH": "openapi.json",
    "OPENAPI_SWAGGER_UI_PATH": "docs",
    "OPENAPI_SWAGGER_UI_URL": ASSETS_URL,  # served by the app (api.docs_page): /docs works offline
    "API_SPEC_OPTIONS": {
        "info": {"description": DESCRIPTION},
        "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
    },
}

WRITE = {"security": [{"bearerAuth": []}]}
"""``@blp.doc(**WRITE)`` marks a view as needing a token in the OpenAPI document."""
