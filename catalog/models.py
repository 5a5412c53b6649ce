"""The catalog's tables as SQLAlchemy 2 models.

The database is the backstop for validation: every rule the schemas enforce
that can be stated per row (ranges, uniqueness, currency shape) is also a
CHECK, UNIQUE or FK here, so a bug above cannot store a bad row. The Alembic
migrations in ``migrations/`` create exactly these tables; a test compares the
two.

Deliberate ON DELETE choices: a category with products or children cannot be
deleted (RESTRICT, surfaced as 409); deleting a product deletes its reviews
and aggregates (CASCADE), since they mean nothing without it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Computed,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

SEARCH_CONFIG = "english"
"""PostgreSQL text search configuration behind the ``q`` filter."""

MAX_INT = 2**31 - 1
"""The largest PostgreSQL ``integer`` (ids, stock): a larger id names no row and is not looked up, a
larger stock is refused by the schemas before the database would."""


class Base(DeclarativeBase):
    pass


class Category(Base):
    __tablename__ = "categories"
    __table_args__ = (
        CheckConstraint("slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'", name="ck_categories_slug_format"),
        CheckConstraint("parent_id IS NULL OR parent_id <> id", name="ck_categories_not_own_parent"),
        Index("ix_categories_parent_id", "parent_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id", ondelete="RESTRICT"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    parent: Mapped[Category | None] = relationship(remote_side=[id], lazy="joined")


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("price >= 0", name="ck_products_price_nonnegative"),
        CheckConstraint("stock >= 0", name="ck_products_stock_nonnegative"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="ck_products_currency_iso4217"),
        CheckConstraint("version >= 1", name="ck_products_version_positive"),
        CheckConstraint("slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'", name="ck_products_slug_format"),
        CheckConstraint("jsonb_typeof(attributes) = 'object'", name="ck_products_attributes_object"),
        # Keyset pagination: one (sort key, id) index per sort, only over what lists show.
        Index("ix_products_name_id", "name", "id", postgresql_where=text("is_active")),
        Index("ix_products_price_id", "price", "id", postgresql_where=text("is_active")),
        Index("ix_products_created_id", "created_at", "id", postgresql_where=text("is_active")),
        Index("ix_products_category_id", "category_id"),
        # Brand filters are case-insensitive (equal queries must share one cache key).
        Index("ix_products_brand", func.lower(text("brand")), postgresql_where=text("is_active")),
        Index("ix_products_in_stock", "id", postgresql_where=text("is_active AND stock > 0")),
        Index("ix_products_search", "search", postgresql_using="gin"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(220), unique=True)
    description: Mapped[str] = mapped_column(Text, server_default="")
    brand: Mapped[str] = mapped_column(String(80))
    price: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    currency: Mapped[str] = mapped_column(String(3))
    stock: Mapped[int] = mapped_column(Integer, server_default="0")
    attributes: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id", ondelete="RESTRICT"))
    is_active: Mapped[bool] = mapped_column(server_default=text("true"))
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    search = mapped_column(
        TSVECTOR,
        Computed(
            f"to_tsvector('{SEARCH_CONFIG}', name || ' ' || brand || ' ' || description)",
            persisted=True,
        ),
    )

    category: Mapped[Category] = relationship(lazy="joined", innerjoin=True)
    rating: Mapped[ProductRatingSummary] = relationship(
        lazy="joined", innerjoin=True, cascade="all, delete-orphan", passive_deletes=True
    )

    # Every UPDATE bumps version (ETags and If-Match follow it) and checks it: writes lock the row
    # first (services.products.WRITE_LOCK), so the check only stops a write that did not.
    __mapper_args__ = {"version_id_col": version}


class Review(Base):
    __tablename__ = "reviews"
    __table_args__ = (
        CheckConstraint("rating BETWEEN 1 AND 5", name="ck_reviews_rating_range"),
        Index("ix_reviews_product_created", "product_id", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    rating: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, server_default="")
    author: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ProductRatingSummary(Base):
    """One row per product, created with it; refreshed by ``services.aggregates``."""

    __tablename__ = "product_rating_summaries"
    __table_args__ = (
        CheckConstraint("review_count >= 0", name="ck_rating_summaries_count"),
        CheckConstraint("average BETWEEN 0 AND 5", name="ck_rating_summaries_average"),
        CheckConstraint("cardinality(histogram) = 5", name="ck_rating_summaries_histogram"),
        Index("ix_rating_summaries_average", "average", "product_id"),
    )

    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), primary_key=True)
    review_count: Mapped[int] = mapped_column(Integer, server_default="0")
    # 0 when there are no reviews, so the rating sort needs no NULL handling.
    average: Mapped[Decimal] = mapped_column(Numeric(3, 2), server_default="0")
    histogram: Mapped[list[int]] = mapped_column(ARRAY(Integer), server_default=text("'{0,0,0,0,0}'"))
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CategoryStats(Base):
    """Stats over a category's whole subtree (a parent counts its children's products)."""

    __tablename__ = "category_stats"
    __table_args__ = (
        CheckConstraint("product_count >= 0", name="ck_category_stats_product_count"),
        CheckConstraint("review_count >= 0", name="ck_category_stats_review_count"),
    )

    category_id: Mapped[int] = mapped_column(
        ForeignKey("categories.id", ondelete="CASCADE"), primary_key=True
    )
    product_count: Mapped[int] = mapped_column(Integer, server_default="0")
    min_price: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    max_price: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    avg_price: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    average_rating: Mapped[Decimal | None] = mapped_column(Numeric(3, 2))
    review_count: Mapped[int] = mapped_column(Integer, server_default="0")
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CacheOutbox(Base):
    """Cache invalidations written in the same transaction as the change they follow.

    After commit the app applies a row to Redis and deletes it; if Redis was
    unreachable (or the process died first) the row stays until a drain
    replays it. See ``catalog.invalidation`` for who drains and when.
    """

    __tablename__ = "cache_outbox"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    invalidations: Mapped[dict] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class EdgePurge(Base):
    """A purge an edge cache has not acknowledged: one row per configured edge, written in the
    write's transaction with its cache_outbox row, deleted on the edge's ack (``catalog.edge_purge``)."""

    __tablename__ = "edge_purges"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    edge: Mapped[str] = mapped_column(String(500))
    tags: Mapped[list] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class RecomputeRequest(Base):
    """An aggregate recompute a write calls for, written in that write's transaction.

    After commit the app queues it and deletes the row; if the queue's Redis was
    unreachable (or the process died first) the row stays until it is sent again.
    See ``catalog.recomputes``.
    """

    __tablename__ = "recompute_requests"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))  # a job policy of catalog.queues: recompute_product, ...
    target: Mapped[str] = mapped_column(String(200))  # what requests are deduplicated by
    args: Mapped[list] = mapped_column(JSONB)  # the job's positional arguments: ids
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
