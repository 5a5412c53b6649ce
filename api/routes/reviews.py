"""/v1/products/{id}/reviews: a product's reviews, newest first, and posting one."""

from __future__ import annotations

from flask import url_for
from flask.views import MethodView

from cache.entry import Payload

from .. import caching, db, schemas
from ..auth import require_token
from ..errors import problem
from ..http import send
from ..openapi import WRITE, Blueprint
from ..representations import REVIEW, REVIEW_PAGE, render
from ..services import products as service
from ..services.errors import NotFound
from .products import decode_cursor, encode_cursor

blp = Blueprint("reviews", __name__, url_prefix="/v1/products", description="Product reviews.")


@blp.route("/<int(signed=True):product_id>/reviews")
class ProductReviews(MethodView):
    @blp.arguments(schemas.PageQuerySchema, location="query")
    @blp.response(200, schemas.ReviewPageSchema)
    @blp.alt_response(400, response="BAD_REQUEST")
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, query, product_id):
        """List a product's reviews, newest first."""
        if not 0 < product_id <= service.MAX_ID:
            raise problem(404, f"product {product_id} not found")
        query = {**query, "product_id": product_id}
        after = decode_cursor(query)

        def read() -> Payload:
            session = db.session()
            try:
                service.get_product(session, product_id)
            except NotFound:
                return caching.NOT_FOUND
            rows, last = service.list_reviews(session, product_id, query["limit"], after)
            page = {"items": rows, "next_cursor": encode_cursor(query, last)}
            return caching.payload(render(REVIEW_PAGE, page))

        key = caching.keys().reviews(product_id, {"limit": query["limit"], "cursor": query["cursor"]})
        return caching.serve(key, read)

    @require_token
    @blp.arguments(schemas.ReviewCreateSchema)
    @blp.response(201, schemas.ReviewSchema)
    @blp.alt_response(401, response="UNAUTHORIZED")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.doc(**WRITE)
    def post(self, data, product_id):
        """Review an active product. Its rating summary updates with the review."""
        session = db.session()
        product = service.get_product(session, product_id)
        review = service.add_review(session, product, data)
        session.commit()
        location = url_for("reviews.ProductReviews", product_id=product.id)
        return send(render(REVIEW, review), 201, {"Location": location})
