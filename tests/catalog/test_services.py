"""The catalog's services without HTTP: a session in, rows and recorded changes out.

Each test runs a service in a session of ``catalog.db.make_sessionmaker`` whose one effect records
the changes it is told of, and what runs once the transaction commits, so the tests see what a
write declares (``catalog.services.effects``) and that nothing runs for a rollback.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from catalog.db import make_sessionmaker
from catalog.models import MAX_INT
from catalog.services import categories, products
from catalog.services.effects import CATEGORY, PRODUCT, REVIEW, Change
from catalog.services.errors import Conflict, InvalidInput, NotFound
from tests.factories import make_category, make_product, product_fields, token


class Recorder:
    """An effect that keeps every change, and which of them reached their commit."""

    def __init__(self):
        self.changes: list[Change] = []
        self.committed: list[Change] = []

    def prepare(self, db, change: Change):
        self.changes.append(change)
        return lambda: self.committed.append(change)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def db(engine, recorder):
    session = make_sessionmaker(engine, [recorder])()
    yield session
    session.close()


def new_product(category, **overrides) -> dict:
    fields = product_fields(**overrides)
    fields.pop("slug")
    return {**fields, "category": category.slug}


def test_creating_a_product_declares_it_listed_and_runs_the_effect_after_the_commit(db, engine, recorder):
    category = make_category(engine)
    product = products.create_product(db, new_product(category, name="Trail Shoe"))
    [change] = recorder.changes
    assert (change.kind, change.product_ids, change.category_ids) == (PRODUCT, (product.id,), (category.id,))
    [(before, after)] = change.listings
    assert before is None and after.name == "Trail Shoe" and category.slug in after.scopes
    assert recorder.committed == []
    db.commit()
    assert recorder.committed == [change]
    assert product.slug.startswith("trail-shoe-")


def test_a_rolled_back_write_runs_no_effect(db, engine, recorder):
    products.create_product(db, new_product(make_category(engine)))
    db.rollback()
    db.commit()
    assert len(recorder.changes) == 1 and recorder.committed == []


def test_an_update_that_changes_nothing_declares_nothing(db, engine, recorder):
    product = make_product(engine, make_category(engine), price=Decimal("10.00"))
    loaded = products.get_product(db, product.id, for_update=True)
    products.update_product(db, loaded, {"price": Decimal("10.00")})
    assert recorder.changes == []


def test_moving_a_product_names_both_categories(db, engine, recorder):
    old, new = make_category(engine), make_category(engine)
    product = products.get_product(db, make_product(engine, old).id, for_update=True)
    products.update_product(db, product, {"category": new.slug})
    [change] = recorder.changes
    assert change.category_ids == tuple(sorted((old.id, new.id)))
    [(before, after)] = change.listings
    assert old.slug in before.scopes and new.slug in after.scopes


def test_a_review_declares_its_product_and_category(db, engine, recorder):
    category = make_category(engine)
    product = products.get_product(db, make_product(engine, category).id)
    products.add_review(db, product, {"rating": 4, "title": "Good", "body": "", "author": "Ann"})
    assert [(c.kind, c.product_ids, c.category_ids) for c in recorder.changes] == [
        (REVIEW, (product.id,), (category.id,))
    ]


def test_a_duplicate_sku_is_a_conflict_naming_the_field(db, engine):
    category = make_category(engine)
    existing = make_product(engine, category)
    with pytest.raises(Conflict) as raised:
        products.create_product(db, new_product(category, sku=existing.sku))
    assert raised.value.field == "sku"


def test_inactive_and_unknown_products_are_not_found_unless_asked_for(db, engine):
    inactive = make_product(engine, make_category(engine), is_active=False)
    with pytest.raises(NotFound):
        products.get_product(db, inactive.id)
    assert products.get_product(db, inactive.id, include_inactive=True).id == inactive.id
    for unknown in (0, -1, MAX_INT + 1):
        with pytest.raises(NotFound):
            products.get_product(db, unknown)


def test_keyset_pages_cover_every_active_product_once(db, engine):
    category = make_category(engine)
    made = [make_product(engine, category, price=Decimal(price)) for price in ("3", "1", "2", "1", "5")]
    make_product(engine, category, is_active=False)
    query = {"category": category.slug, "brand": None, "min_price": None, "max_price": None}
    query |= {"in_stock": None, "q": None, "sort": "price", "limit": 2}
    seen, after = [], None
    while True:
        page = products.list_products(db, query, after)
        seen += [row.id for row in page.rows]
        if page.next_key is None:
            break
        after = page.next_key
    by_price = sorted(made, key=lambda p: (p.price, p.id))
    assert seen == [p.id for p in by_price]


def test_categories_nest_two_levels_at_most(db, engine, recorder):
    top = categories.create_category(db, {"slug": token("top"), "name": "Top"})
    child = categories.create_category(db, {"slug": token("child"), "name": "Child", "parent": top.slug})
    with pytest.raises(InvalidInput):
        categories.create_category(db, {"slug": token("deep"), "name": "Deep", "parent": child.slug})
    assert [c.kind for c in recorder.changes] == [CATEGORY, CATEGORY]
    assert recorder.changes[1].category_ids == tuple(sorted((top.id, child.id)))


def test_a_category_with_products_or_children_is_not_deleted(db, engine):
    parent = make_category(engine)
    make_category(engine, parent=parent)
    with pytest.raises(Conflict, match="subcategories"):
        categories.delete_category(db, categories.get_category_by_slug(db, parent.slug))
    db.rollback()
    stocked = make_category(engine)
    make_product(engine, stocked)
    with pytest.raises(Conflict, match="products"):
        categories.delete_category(db, categories.get_category_by_slug(db, stocked.slug))


def test_deleting_a_category_declares_its_slug_gone(db, engine, recorder):
    empty = make_category(engine)
    categories.delete_category(db, categories.get_category_by_slug(db, empty.slug))
    [change] = recorder.changes
    assert change.gone_category_slugs == (empty.slug,)
