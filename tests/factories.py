"""Test data builders: random values, real rows, no fixed ids."""

from __future__ import annotations

import random
import secrets
from decimal import Decimal

from sqlalchemy.orm import Session

from catalog.models import Category, CategoryStats, Product, ProductRatingSummary


def token(prefix: str = "t") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def make_category(engine, *, parent: Category | None = None, **fields) -> Category:
    with Session(engine, expire_on_commit=False) as db:
        slug = fields.pop("slug", token("cat"))
        category = Category(slug=slug, name=fields.pop("name", slug.title()), parent_id=parent and parent.id)
        db.add(category)
        db.flush()
        db.add(CategoryStats(category_id=category.id))
        db.commit()
        return category


def product_fields(**overrides) -> dict:
    sku = token("SKU").upper()
    fields = {
        "sku": sku,
        "name": f"Widget {secrets.token_hex(3)}",
        "slug": sku.lower(),
        "description": "A test widget",
        "brand": random.choice(["Acme", "Globex", "Initech"]),
        "price": Decimal(random.randint(100, 99999)) / 100,
        "currency": "USD",
        "stock": random.randint(1, 50),
        "attributes": {"color": random.choice(["red", "blue"])},
    }
    fields.update(overrides)
    return fields


def make_product(engine, category: Category, **overrides) -> Product:
    with Session(engine, expire_on_commit=False) as db:
        product = Product(**product_fields(**overrides), category_id=category.id)
        product.rating = ProductRatingSummary()
        db.add(product)
        db.commit()
        return product


def make_products(engine, category: Category, count: int, **overrides) -> list[Product]:
    return [make_product(engine, category, **overrides) for _ in range(count)]
