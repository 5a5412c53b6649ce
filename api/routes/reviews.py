"""/v1/products/{id}/reviews: a product's reviews, newest first, and posting one."""

from __future__ import annotations

from flask import url_for
from flask.views import MethodView

from catalog import schemas
from catalog.models import MAX_INT
from catalog.representations import REVIEW, REVIEW_PAGE, Rendered, render
from catalog.services import products as service

from .. import caching, db
from ..errors import problem
from ..guards.auth import require_token
from ..http import send
from ..openapi import WRITE, Blueprint
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
        if not 0 < product_id <= MAX_INT:
            raise problem(404, f"product {product_id} not found")
        query = {**query, "product_id": product_id}
        after = decode_cursor(query)

        def read() -> Rendered:
            session = db.session()
            service.get_product(session, product_id)  # unknown or inactive: a cached 404
            rows, last = service.list_reviews(session, product_id, query["limit"], after)
            return render(REVIEW_PAGE, {"items": rows, "next_cursor": encode_cursor(query, last)})

        key = caching.keys().reviews(product_id, {"limit": query["limit"], "cursor": query["cursor"]})
        return caching.serve(key, read)

    @require_token
    @blp.arguments(schemas.ReviewCreateSchema)
    @blp.response(201, schemas.ReviewSchema)
    @blp.alt_response(401, response="UNAUTHORIZED")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.doc(**WRITE)
    def post(self, data, product_id):
        """Review an active product. Its rating follows when the recompute job has run (seconds)."""
        session = db.session()
        product = service.get_product(session, product_id)
        review = service.add_review(session, product, data)
        session.commit()
        location = url_for("reviews.ProductReview", product_id=product.id, review_id=review.id)
        return send(render(REVIEW, review), 201, {"Location": location})


@blp.route("/<int(signed=True):product_id>/reviews/<int(signed=True):review_id>")
class ProductReview(MethodView):
    @blp.response(200, schemas.ReviewSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, product_id, review_id):
        """One review of an active product (where a new review's Location points)."""
        review = service.get_review(db.session(), product_id, review_id)
        return send(render(REVIEW, review), 200)
