"""Product reads and writes, free of HTTP.

Every function takes the SQLAlchemy session it works in. Writes flush, turn
database constraint violations into domain errors, and register their side
effects with :mod:`catalog.services.effects`, which runs them only after commit;
the caller (a view, a job, a test) owns the commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Select, case, func, select, tuple_
from sqlalchemy.orm import Session

from ..list_deps import UNRATED_LAST, listing, rating_up
from ..models import MAX_INT, Product, ProductRatingSummary, Review
from . import effects
from .categories import get_category_by_slug, subtree_ids
from .constraints import flush_or_raise
from .errors import InvalidInput, NotFound
from .slugs import slugify

RATING_UP = case((ProductRatingSummary.average == 0, UNRATED_LAST), else_=ProductRatingSummary.average)
"""The ascending rating order's column: unrated products (average 0) last (``list_deps.rating_up``)."""

# sort name -> (column, descending)
SORT_COLUMNS = {
    "name": (Product.name, False),
    "price": (Product.price, False),
    "-price": (Product.price, True),
    "rating": (RATING_UP, False),
    "-rating": (ProductRatingSummary.average, True),
    "newest": (Product.created_at, True),
}


WRITE_LOCK = {"of": Product, "key_share": True}
"""``FOR NO KEY UPDATE OF products``, the lock an UPDATE of the row takes anyway, taken when a write
reads it: writes to one product take turns, each reading the row as the one before committed it, so
none finds its version gone (a 409) and If-Match is compared with the current row. A review's
insert (its foreign key takes ``KEY SHARE``) does not wait for it."""


def get_product(
    db: Session, product_id: int, *, include_inactive: bool = False, for_update: bool = False
) -> Product:
    """The product; ``for_update`` locks its row (``WRITE_LOCK``) until the transaction ends."""
    lock = WRITE_LOCK if for_update else None
    product = (
        db.get(Product, product_id, populate_existing=True, with_for_update=lock)
        if 0 < product_id <= MAX_INT
        else None
    )
    if product is None or not (product.is_active or include_inactive):
        raise NotFound(f"product {product_id} not found")
    return product


@dataclass(frozen=True)
class ProductPage:
    """One page: its rows, the key to continue after (None on the last page), and the sort values
    that bound what it covers: its cursor's (None on a first page) and the next row's (None on
    the last page), which ``catalog.list_deps`` turns into the page's dependencies."""

    rows: list[Product]
    next_key: list | None
    after_value: object | None
    beyond_value: object | None


def list_products(db: Session, query: dict, after: list | None) -> ProductPage:
    """One page of active products, in keyset order."""
    column, descending = SORT_COLUMNS[query["sort"]]
    stmt = _filtered(db, query).order_by(
        column.desc() if descending else column, Product.id.desc() if descending else Product.id
    )
    after_value = None
    if after is not None:
        key = tuple_(column, Product.id)
        bound = _parse_key(query["sort"], after)
        after_value = bound[0]
        stmt = stmt.where(key < tuple_(*bound) if descending else key > tuple_(*bound))
    rows = list(db.scalars(stmt.limit(query["limit"] + 1)).unique())
    if len(rows) <= query["limit"]:
        return ProductPage(rows, None, after_value, None)
    beyond = rows[query["limit"]]
    rows = rows[: query["limit"]]
    return ProductPage(
        rows, sort_key(query["sort"], rows[-1]), after_value, sort_value(query["sort"], beyond)
    )


def _filtered(db: Session, query: dict) -> Select:
    stmt = select(Product).join(Product.rating).where(Product.is_active)
    if query["category"] is not None:
        category = get_category_by_slug(db, query["category"], field="category", error=InvalidInput)
        stmt = stmt.where(Product.category_id.in_(subtree_ids(db, category.id)))
    if query["brand"] is not None:
        stmt = stmt.where(func.lower(Product.brand) == query["brand"])
    if query["min_price"] is not None:
        stmt = stmt.where(Product.price >= query["min_price"])
    if query["max_price"] is not None:
        stmt = stmt.where(Product.price <= query["max_price"])
    if query["in_stock"] is not None:
        stmt = stmt.where(Product.stock > 0 if query["in_stock"] else Product.stock == 0)
    if query["q"] is not None:
        stmt = stmt.where(Product.search.op("@@")(func.websearch_to_tsquery("english", query["q"])))
    return stmt


def sort_value(sort: str, product: Product) -> object:
    """``product``'s value of the column ``sort`` orders by."""
    if sort == "rating":
        return rating_up(product.rating.average)
    return {
        "name": lambda: product.name,
        "price": lambda: product.price,
        "rating": lambda: product.rating.average,
        "newest": lambda: product.created_at,
    }[sort.lstrip("-")]()


def sort_key(sort: str, product: Product) -> list:
    """The JSON-safe keyset position of ``product`` under ``sort``."""
    value = {
        "name": product.name,
        "price": str(product.price),
        "-price": str(product.price),
        "rating": str(rating_up(product.rating.average)),
        "-rating": str(product.rating.average),
        "newest": product.created_at.isoformat(),
    }[sort]
    return [value, product.id]


def _parse_key(sort: str, key: list) -> tuple:
    value, product_id = key
    if not isinstance(value, str) or not isinstance(product_id, int):
        raise InvalidInput("malformed cursor", field="cursor")
    try:
        if sort == "newest":
            return datetime.fromisoformat(value), product_id
        if sort != "name":
            return Decimal(value), product_id
    except ValueError as exc:
        raise InvalidInput("malformed cursor", field="cursor") from exc
    return value, product_id


def create_product(db: Session, data: dict) -> Product:
    category = get_category_by_slug(db, data.pop("category"), field="category", error=InvalidInput)
    data.setdefault("slug", slugify(f"{data['name']} {data['sku']}"))
    product = Product(**data, category=category)
    product.rating = ProductRatingSummary()
    db.add(product)
    flush_or_raise(db)
    effects.product_changed(db, product.id, {category.id}, None, listing(product))
    return product


def update_product(db: Session, product: Product, changes: dict) -> Product:
    categories, before = {product.category_id}, listing(product)
    if "category" in changes:
        product.category = get_category_by_slug(
            db, changes.pop("category"), field="category", error=InvalidInput
        )
        categories.add(product.category.id)
    for name, value in changes.items():
        setattr(product, name, value)
    if db.is_modified(product):
        flush_or_raise(db)
        db.refresh(product)
        effects.product_changed(db, product.id, categories, before, listing(product))
    return product


def delete_product(db: Session, product: Product) -> None:
    product_id, category_id, before = product.id, product.category_id, listing(product)
    db.delete(product)
    flush_or_raise(db)
    effects.product_changed(db, product_id, {category_id}, before, None)


def add_review(db: Session, product: Product, data: dict) -> Review:
    review = Review(product_id=product.id, **data)
    db.add(review)
    flush_or_raise(db)
    effects.review_added(db, product.id, product.category_id)
    return review


def get_review(db: Session, product_id: int, review_id: int) -> Review:
    """One review of an active product."""
    get_product(db, product_id)
    review = db.get(Review, review_id) if 0 < review_id <= MAX_INT else None
    if review is None or review.product_id != product_id:
        raise NotFound(f"review {review_id} of product {product_id} not found")
    return review


def list_reviews(db: Session, product_id: int, limit: int, after: list | None):
    stmt = select(Review).where(Review.product_id == product_id)
    if after is not None:
        created, review_id = after
        try:
            bound = tuple_(datetime.fromisoformat(created), int(review_id))
        except (TypeError, ValueError) as exc:
            raise InvalidInput("malformed cursor", field="cursor") from exc
        stmt = stmt.where(tuple_(Review.created_at, Review.id) < bound)
    stmt = stmt.order_by(Review.created_at.desc(), Review.id.desc()).limit(limit + 1)
    return _review_page(list(db.scalars(stmt)), limit)


def first_review_pages(
    db: Session, product_ids: list[int], limit: int
) -> dict[int, tuple[list[Review], list | None]]:
    """The first page of each product's reviews, as ``list_reviews`` gives it, in one query."""
    order = (Review.created_at.desc(), Review.id.desc())
    rank = func.row_number().over(partition_by=Review.product_id, order_by=order).label("rank")
    ranked = select(Review.id, rank).where(Review.product_id.in_(product_ids)).subquery()
    stmt = select(Review).join(ranked, ranked.c.id == Review.id).where(ranked.c.rank <= limit + 1)
    pages: dict[int, list[Review]] = {pid: [] for pid in product_ids}
    for review in db.scalars(stmt.order_by(Review.product_id, *order)):
        pages[review.product_id].append(review)
    return {pid: _review_page(rows, limit) for pid, rows in pages.items()}


def _review_page(rows: list[Review], limit: int) -> tuple[list[Review], list | None]:
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, [rows[-1].created_at.isoformat(), rows[-1].id]
