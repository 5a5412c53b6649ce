"""Turn domain objects into the bytes a response carries, with their ETag.

A representation is built once: ``.dump()`` through the public schema (so
only its fields leave), serialized with orjson, and hashed for a strong
ETag. The same bytes are what the cache stores, so a hit sends exactly what
a miss would have.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson

from . import schemas
from .models import Product


@dataclass(frozen=True)
class Rendered:
    body: bytes
    etag: str  # quoted, as it appears in the ETag header


def etag_of(body: bytes) -> str:
    """The strong entity tag of ``body``, quoted."""
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def render(schema, data) -> Rendered:
    body = orjson.dumps(schema.dump(data))
    return Rendered(body, etag_of(body))


def product_view(product: Product) -> dict:
    summary = product.rating
    return {
        **{name: getattr(product, name) for name in PRODUCT_COLUMNS},
        "in_stock": product.stock > 0,
        "category": product.category,
        "rating": {
            "average": float(summary.average) if summary.review_count else None,
            "count": summary.review_count,
        },
    }


PRODUCT_COLUMNS = (
    "id sku name slug description brand price currency stock attributes version created_at updated_at"
).split()

PRODUCT = schemas.ProductSchema()
CATEGORY = schemas.CategorySchema()
CATEGORY_TREE = schemas.CategoryTreeSchema()
REVIEW = schemas.ReviewSchema()
REVIEW_PAGE = schemas.ReviewPageSchema()


def render_product(product: Product) -> Rendered:
    return render(PRODUCT, product_view(product))
