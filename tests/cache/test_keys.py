"""Key building: canonical parameters, versioned prefix, and one cluster slot per key family."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from cache.keys import SCHEMA_VERSION, key_kind, tag_key
from catalog.resources import CatalogKeys

KEYS = CatalogKeys()


def _slots(*keys: str) -> set[int]:
    return {key_slot(key.encode()) for key in keys}


def test_product_key_layout():
    key = KEYS.product(123)
    assert (key.resource, key.generation) == ("product", None)
    assert key.entry == f"shelf:v{SCHEMA_VERSION}:{{p:123}}:body"
    assert key.lease == f"shelf:v{SCHEMA_VERSION}:{{p:123}}:lease"


def test_parameter_order_never_makes_a_new_key():
    first = KEYS.reviews(1, {"page": 2, "sort": "price", "filters": {"a": 1, "b": [1, 2]}})
    second = KEYS.reviews(1, {"filters": {"b": [1, 2], "a": 1}, "sort": "price", "page": 2})
    assert first == second


def test_different_parameters_or_scopes_make_different_keys():
    base = KEYS.reviews(1, {"page": 1})
    assert base != KEYS.reviews(1, {"page": 2})
    assert base.entry != KEYS.reviews(2, {"page": 1}).entry
    assert KEYS.reviews(1, {"page": 1}) != KEYS.reviews(2, {"page": 1})


def test_prefix_and_schema_version_change_every_key():
    for other in (CatalogKeys(schema_version=SCHEMA_VERSION + 1), CatalogKeys(prefix="shelf-staging")):
        assert other.product(1).entry != KEYS.product(1).entry
        assert other.category_tree().entry != KEYS.category_tree().entry
        assert other.reviews(1, {}).generation != KEYS.reviews(1, {}).generation


@pytest.mark.parametrize(
    "key",
    [
        KEYS.product(9),
        KEYS.category("shoes"),
        KEYS.category_tree(),
        KEYS.reviews(1, {"page": 3}),
        KEYS.reviews(9, {"page": 1}),
    ],
    ids=lambda key: key.resource,
)
def test_keys_touched_together_share_one_cluster_slot(key):
    assert len(_slots(key.entry, key.lease, *([key.generation] if key.generation else []))) == 1


def test_list_pages_of_a_scope_share_the_slot_of_its_generation_counter():
    pages = [KEYS.reviews(1, {"page": n}).entry for n in range(5)]
    assert _slots(*pages, KEYS.reviews_generation(1)) == _slots(KEYS.reviews_generation(1))
    assert KEYS.reviews(1, {}).generation == KEYS.reviews_generation(1)
    assert KEYS.reviews(4, {}).generation == KEYS.reviews_generation(4)


@pytest.mark.parametrize("scope", ["all", "c:books"])
def test_a_list_fill_and_the_invalidation_of_its_scope_touch_one_slot(scope):
    """The FILL script (entry, lease, guard, tag sets) and a write's guard bumps and DROP_TAG calls
    for the scope: one slot, so each is a single-node script or command on a Redis Cluster."""
    pages = [KEYS.product_list({"page": n}, scope, guard) for n, guard in enumerate(("price", "rating"))]
    fill_keys = [k for page in pages for k in (page.entry, page.lease, page.guard)]
    fill_keys += [tag_key(page.entry, name) for page in pages for name in ("scope", "p:12")]
    tags = [KEYS.list_tag(scope, "scope"), KEYS.list_tag(scope, "p:12")]
    invalidation = [KEYS.list_guard(scope, "price"), *tags]
    assert len(_slots(*fill_keys, *invalidation)) == 1
    assert set(tags) <= set(fill_keys)


@pytest.mark.parametrize("bad", ["", "a{b}", "with space", "star*", "x" * 101, 5])
def test_scopes_and_slugs_that_would_break_tags_or_patterns_are_refused(bad):
    with pytest.raises(ValueError):
        KEYS.category(bad)
    with pytest.raises(ValueError):
        KEYS.product_list({}, bad, "price")


@pytest.mark.parametrize("bad", [-1, True, "7", 1.0])
def test_ids_must_be_non_negative_integers(bad):
    with pytest.raises(ValueError):
        KEYS.product(bad)


def test_key_kind_recognises_only_our_keys():
    key = KEYS.reviews(1, {})
    assert [key_kind(k) for k in (key.entry, key.lease, key.generation)] == ["body", "lease", "gen"]
    assert key_kind(KEYS.negative_budget(1)) is None
    assert key_kind("someone:else") is None


def test_purge_patterns_do_not_overlap_between_resources():
    category_pattern = KEYS.pattern("category")
    assert category_pattern.endswith("{c[:}]*")
    assert KEYS.pattern() == "shelf:*"
