"""/v1/products: read, list, create, update, delete products; their reviews live in ``reviews``."""

from __future__ import annotations

from flask import current_app, url_for
from flask.views import MethodView

from cache.entry import Payload
from catalog import edge_tags, pagination, product_pages, schemas
from catalog.models import MAX_INT
from catalog.representations import Rendered, render_product
from catalog.services import products as service

from .. import caching, db
from ..errors import problem
from ..guards.auth import require_token
from ..http import check_if_match, no_content, send
from ..openapi import WRITE, Blueprint

blp = Blueprint("products", __name__, url_prefix="/v1/products", description="Products in the catalog.")


def decode_cursor(query: dict) -> list | None:
    if query.get("cursor") is None:
        return None
    try:
        return pagination.decode(current_app.config["SHELF"].secret_key, query, query["cursor"])
    except pagination.InvalidCursor as exc:
        raise problem(
            400, str(exc), errors=[{"field": "cursor", "in": "query", "message": str(exc)}]
        ) from None


def encode_cursor(query: dict, key: list | None) -> str | None:
    return None if key is None else pagination.encode(current_app.config["SHELF"].secret_key, query, key)


@blp.route("")
class Products(MethodView):
    @blp.arguments(schemas.ProductListQuerySchema, location="query")
    @blp.response(200, schemas.ProductPageSchema)
    @blp.alt_response(400, response="BAD_REQUEST")
    def get(self, query):
        """List active products, filtered and sorted, one keyset page at a time."""
        after = decode_cursor(query)  # rejected before the cache is consulted
        current_app.extensions["shelf.views"].record_page(query)
        rendered: dict[int, bytes] = {}  # a miss's rows, so assembling it needs no second read

        def read() -> Payload:
            page = service.list_products(db.session(), query, after)
            rendered.update((row.id, render_product(row).body) for row in page.rows)
            return product_pages.record(page, query, encode_cursor(query, page.next_key))

        def assemble(record: bytes) -> Rendered:
            return product_pages.assemble(db.session(), caching.region(), record, rendered)

        key = product_pages.page_key(caching.keys(), query)
        return caching.serve(key, read, assemble, edge_tags.list_item_tags)

    @require_token
    @blp.arguments(schemas.ProductCreateSchema)
    @blp.response(201, schemas.ProductSchema)
    @blp.alt_response(401, response="UNAUTHORIZED")
    @blp.alt_response(409, response="CONFLICT")
    @blp.doc(**WRITE)
    def post(self, data):
        """Create a product."""
        session = db.session()
        product = service.create_product(session, data)
        session.commit()
        location = url_for("products.ProductsById", product_id=product.id)
        return send(render_product(product), 201, {"Location": location})


@blp.route("/<int(signed=True):product_id>")
class ProductsById(MethodView):
    @blp.response(200, schemas.ProductSchema)
    @blp.alt_response(304, description="Not Modified")
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, product_id):
        """Read one active product."""
        if not 0 < product_id <= MAX_INT:
            raise problem(404, f"product {product_id} not found")
        current_app.extensions["shelf.views"].record(product_id)
        key = caching.keys().product(product_id)
        return caching.serve(key, lambda: render_product(service.get_product(db.session(), product_id)))

    @require_token
    @blp.arguments(schemas.ProductUpdateSchema)
    @blp.response(200, schemas.ProductSchema)
    @blp.alt_response(401, response="UNAUTHORIZED")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(412, response="PRECONDITION_FAILED")
    @blp.doc(**WRITE)
    def patch(self, changes, product_id):
        """Change some fields of a product (inactive ones too). Send If-Match to avoid lost updates."""
        session = db.session()
        product = service.get_product(session, product_id, include_inactive=True, for_update=True)
        check_if_match(render_product(product))
        product = service.update_product(session, product, changes)
        session.commit()
        return send(render_product(product))

    @require_token
    @blp.response(204)
    @blp.alt_response(401, response="UNAUTHORIZED")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(412, response="PRECONDITION_FAILED")
    @blp.doc(**WRITE)
    def delete(self, product_id):
        """Delete a product and its reviews."""
        session = db.session()
        product = service.get_product(session, product_id, include_inactive=True, for_update=True)
        check_if_match(render_product(product))
        service.delete_product(session, product)
        session.commit()
        return no_content()
