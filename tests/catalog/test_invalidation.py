"""The invalidation rules (catalog.invalidation.invalidation_for): which entries a change makes stale.

Each test builds the change a write would declare and reads the outbox row it turns into: keys to
delete, generations and guards to bump, dependency tags to drop. The README's table of rules is
what these check, rule by rule.
"""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from catalog import list_deps
from catalog.invalidation import invalidation_for
from catalog.resources import CatalogKeys
from catalog.services.effects import AGGREGATES, CATEGORY, PRODUCT, REVIEW, Change
from tests.factories import make_category, make_product

KEYS = CatalogKeys()


@pytest.fixture
def db(engine):
    with Session(engine) as session:
        yield session


def deleted(row: dict) -> set[str]:
    return {entry for _resource, entry, *_rest in row["delete"]}


def listing_of(engine, product):
    with Session(engine) as session:
        return list_deps.listing(session.get(type(product), product.id))


def test_a_product_write_deletes_its_entry_and_drops_only_the_list_pages_it_can_move(db, engine):
    category = make_category(engine)
    product = make_product(engine, category)
    before = listing_of(engine, product)
    after = list_deps.Listing(
        before.scopes, before.name, before.price * 3, before.rating, before.created_at, before.filtered
    )
    row = invalidation_for(
        db, KEYS, Change(PRODUCT, (product.id,), (category.id,), listings=((before, after),))
    )
    assert deleted(row) == {KEYS.product(product.id).entry}
    assert row["tags"] and all(
        tag.startswith(KEYS.list_tag("all", "x").rsplit("{", 1)[0]) for tag in row["tags"]
    )
    assert {KEYS.list_guard(scope, "price") for scope in before.scopes} <= set(row["bump"])
    assert KEYS.list_guard("all", "name") not in row["bump"]  # a price change moves no name order
    assert KEYS.reviews_generation(product.id) not in row["bump"]


def test_a_display_only_change_drops_no_list_page(db, engine):
    category = make_category(engine)
    product = make_product(engine, category)
    same = listing_of(engine, product)
    row = invalidation_for(db, KEYS, Change(PRODUCT, (product.id,), (category.id,), listings=((same, same),)))
    assert deleted(row) == {KEYS.product(product.id).entry}
    assert row["bump"] == [] and row["tags"] == []


def test_creating_or_deleting_a_product_voids_its_review_pages(db, engine):
    category = make_category(engine)
    product = make_product(engine, category)
    listed = listing_of(engine, product)
    for move in ((None, listed), (listed, None)):
        row = invalidation_for(db, KEYS, Change(PRODUCT, (product.id,), (category.id,), listings=(move,)))
        assert KEYS.reviews_generation(product.id) in row["bump"]


def test_a_review_voids_its_product_and_review_pages_but_no_category_entry(db, engine):
    category = make_category(engine)
    product = make_product(engine, category)
    row = invalidation_for(db, KEYS, Change(REVIEW, (product.id,), (category.id,)))
    assert deleted(row) == {KEYS.product(product.id).entry}
    assert row["bump"] == [KEYS.reviews_generation(product.id)]
    assert KEYS.category(category.slug).entry not in deleted(row)


def test_a_category_write_drops_its_entries_its_ancestors_the_tree_its_products_and_its_pages(db, engine):
    parent = make_category(engine)
    child = make_category(engine, parent=parent)
    product = make_product(engine, child)
    row = invalidation_for(db, KEYS, Change(CATEGORY, (), (child.id,)))
    expected = {
        KEYS.category(parent.slug),
        KEYS.category(child.slug),
        KEYS.category_tree(),
        KEYS.product(product.id),
    }
    assert {key.entry for key in expected} <= deleted(row)
    for scope in (parent.slug, child.slug):
        assert KEYS.list_tag(scope, list_deps.SCOPE_TAG) in row["tags"]
        assert {KEYS.list_guard(scope, column) for column in list_deps.DEPTH} <= set(row["bump"])


def test_a_gone_category_is_dropped_by_its_slug(db, engine):
    row = invalidation_for(db, KEYS, Change(CATEGORY, (), (), ("gone-slug",)))
    assert KEYS.category("gone-slug").entry in deleted(row)


@pytest.mark.parametrize(("counts_changed", "tree_dropped"), [(True, True), (False, False)])
def test_a_recompute_drops_the_tree_only_when_product_counts_moved(db, engine, counts_changed, tree_dropped):
    category = make_category(engine)
    row = invalidation_for(db, KEYS, Change(AGGREGATES, (), (category.id,), counts_changed=counts_changed))
    assert KEYS.category(category.slug).entry in deleted(row)
    assert (KEYS.category_tree().entry in deleted(row)) is tree_dropped
