"""flask-smorest glue: the Api and Blueprint Shelf's views are declared with.

Two changes to the defaults: query strings are strict (unknown or repeated
parameters are rejected, since cache keys are built only from validated
parameters), and every documented error response is problem+json.
"""

from __future__ import annotations

import http

import flask_smorest
import marshmallow as ma
from flask_smorest.utils import prepare_response
from webargs.flaskparser import FlaskParser

from .schemas import ProblemSchema

PROBLEM_MIMETYPE = "application/problem+json"


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


class Api(flask_smorest.Api):
    ERROR_SCHEMA = ProblemSchema

    def _register_responses(self):
        for status in http.HTTPStatus:
            response = {"description": status.phrase}
            content_type = self.DEFAULT_RESPONSE_CONTENT_TYPE
            if status >= 400:
                response["schema"] = self.ERROR_SCHEMA
                content_type = PROBLEM_MIMETYPE
            prepare_response(response, self.spec, content_type)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Error", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_MIMETYPE)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)

    def handle_http_exception(self, error):  # our own handler in api.errors renders errors
        from .errors import handle_http_exception

        return handle_http_exception(error)


OPENAPI_CONFIG = {
    "API_TITLE": "Shelf",
    "API_VERSION": "v1",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/",
    "OPENAPI_JSON_PATH": "openapi.json",
    "OPENAPI_SWAGGER_UI_PATH": "docs",
    "OPENAPI_SWAGGER_UI_URL": "https://cdn.jsdelivr.net/npm/swagger-ui-dist/",
    "API_SPEC_OPTIONS": {
        "info": {"description": "A read-heavy product catalog API. Writes need a bearer token."},
        "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
    },
}

WRITE = {"security": [{"bearerAuth": []}]}
"""``@blp.doc(**WRITE)`` marks a view as needing a token in the OpenAPI document."""
