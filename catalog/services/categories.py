"""Category reads and writes: a two-level tree, each node with its subtree stats.

The two-level rule (a parent must itself be top-level, and a category with
children cannot become a child) is enforced here; deletion of a category that
still has products or children is refused here and, as a backstop, by the
RESTRICT foreign keys.
"""

from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from ..models import Category, CategoryStats, Product
from . import effects
from .constraints import flush_or_raise
from .errors import Conflict, InvalidInput, NotFound


def get_category_by_slug(db: Session, slug: str, *, field: str | None = None, error=NotFound) -> Category:
    category = db.scalar(select(Category).where(Category.slug == slug))
    if category is None:
        raise error(f"category {slug!r} not found", field=field)
    return category


def subtree_ids(db: Session, category_id: int) -> list[int]:
    children = db.scalars(select(Category.id).where(Category.parent_id == category_id))
    return [category_id, *children]


def category_tree(db: Session) -> list[dict]:
    """Top-level categories with their children, each with its subtree's product count."""
    rows = db.execute(
        select(Category, CategoryStats.product_count)
        .outerjoin(CategoryStats, CategoryStats.category_id == Category.id)
        .order_by(Category.name, Category.id)
    ).all()
    nodes = {
        c.id: {"id": c.id, "slug": c.slug, "name": c.name, "product_count": n or 0, "children": []}
        for c, n in rows
    }
    roots = []
    for category, _count in rows:
        parent = nodes.get(category.parent_id)
        (parent["children"] if parent else roots).append(nodes[category.id])
    return roots


def category_detail(db: Session, slug: str) -> dict:
    category = get_category_by_slug(db, slug)
    stats = db.get(CategoryStats, category.id)
    children = db.scalars(select(Category).where(Category.parent_id == category.id).order_by(Category.name))
    return {
        "id": category.id,
        "slug": category.slug,
        "name": category.name,
        "parent": category.parent,
        "children": list(children),
        "stats": stats or {"product_count": 0, "review_count": 0},
        "created_at": category.created_at,
        "updated_at": category.updated_at,
    }


def create_category(db: Session, data: dict) -> Category:
    parent = _parent(db, data.pop("parent", None))
    category = Category(**data, parent=parent)
    db.add(category)
    flush_or_raise(db)
    db.add(CategoryStats(category_id=category.id))
    flush_or_raise(db)
    effects.category_changed(db, {category.id, *([parent.id] if parent else [])})
    return category


def update_category(db: Session, category: Category, changes: dict) -> Category:
    affected, old_slug = {category.id, category.parent_id}, category.slug
    if "parent" in changes:
        parent = _parent(db, changes.pop("parent"))
        if parent is not None and (parent.id == category.id or _has_children(db, category.id)):
            raise InvalidInput("categories nest two levels deep at most", field="parent")
        category.parent = parent
        affected.add(parent.id if parent else None)
    for name, value in changes.items():
        setattr(category, name, value)
    if db.is_modified(category):
        flush_or_raise(db)
        db.refresh(category)
        effects.category_changed(db, affected - {None}, {old_slug} - {category.slug})
    return category


def delete_category(db: Session, category: Category) -> None:
    if _has_children(db, category.id):
        raise Conflict(f"category {category.slug!r} still has subcategories")
    if db.scalar(select(exists().where(Product.category_id == category.id))):
        raise Conflict(f"category {category.slug!r} still has products")
    affected = {category.parent_id} - {None}
    db.delete(category)
    flush_or_raise(db)
    effects.category_changed(db, affected, {category.slug})


def _parent(db: Session, slug: str | None) -> Category | None:
    if slug is None:
        return None
    parent = get_category_by_slug(db, slug, field="parent", error=InvalidInput)
    if parent.parent_id is not None:
        raise InvalidInput("categories nest two levels deep at most", field="parent")
    return parent


def _has_children(db: Session, category_id: int) -> bool:
    return bool(db.scalar(select(exists().where(Category.parent_id == category_id))))
