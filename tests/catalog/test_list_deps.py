"""The dependency rules of list pages: tree covers, buckets, and which tags a write names."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from catalog import list_deps
from catalog.list_deps import Listing, bucket, page_tags, write_tags


def covered(nodes, depth) -> set[int]:
    return {leaf for level, index in nodes for leaf in range(index << level, (index + 1) << level)}


@pytest.mark.parametrize("depth", [0, 3, 5])
def test_a_cover_is_exactly_the_range_it_was_asked_for(depth):
    top = 2**depth - 1
    for low in range(top + 1):
        for high in range(low, top + 1):
            nodes = list_deps._cover(depth, low, high)
            assert covered(nodes, depth) == set(range(low, high + 1)), (low, high)
            assert len(nodes) <= 2 * depth + 1


def test_every_bucket_names_its_ancestors_so_every_cover_node_over_it_is_named():
    depth = list_deps.DEPTH["rating"]
    for leaf in (0, 1, 250, 511):
        named = {tag for tag in list_deps._ancestors("u", "rating", leaf)}
        for low, high in ((0, 511), (leaf, leaf), (0, leaf), (leaf, 511)):
            nodes = {
                list_deps._tag("u", "rating", level, index)
                for level, index in list_deps._cover(depth, low, high)
            }
            assert nodes & named, (leaf, low, high)
        outside = list_deps._cover(depth, leaf + 1, 511) if leaf < 511 else []
        assert not {list_deps._tag("u", "rating", lv, ix) for lv, ix in outside} & named


@pytest.mark.parametrize(
    ("column", "values"),
    [
        (
            "price",
            ["0.00", "0.01", "0.02", "0.99", "1.00", "10.00", "10.01", "99.99", "12000.00", "9999999999.99"],
        ),
        ("rating", ["0.00", "1.00", "1.01", "4.99", "5.00"]),
    ],
)
def test_buckets_never_decrease_as_values_grow(column, values):
    buckets = [bucket(column, Decimal(value)) for value in values]
    assert buckets == sorted(buckets)
    assert buckets[0] >= 0 and buckets[-1] < 2 ** list_deps.DEPTH[column]


def test_creation_hours_are_buckets_in_order():
    start = datetime(2026, 5, 1, tzinfo=UTC)
    hours = [bucket("newest", start + timedelta(minutes=m)) for m in (0, 59, 60, 600, 60 * 24 * 365)]
    assert hours == sorted(hours) and hours[0] == hours[1] < hours[2]


def listing(**changes) -> Listing:
    base = Listing(
        frozenset({"all", "kitchen", "home"}),
        "Kettle",
        Decimal("10.00"),
        Decimal("4.50"),
        datetime(2026, 3, 1, tzinfo=UTC),
        ("acme", "Kettle", "red", Decimal("10.00"), True),
    )
    return replace(base, **changes)


def test_a_write_that_changes_nothing_lists_show_names_no_page():
    assert write_tags(listing(), listing()) == {}


def test_a_price_change_names_price_pages_and_every_filtered_page_but_no_other_unfiltered_order():
    before = listing()
    after = listing(price=Decimal("12.00"), filtered=("acme", "Kettle", "red", Decimal("12.00"), True))
    tags = write_tags(before, after)
    assert set(tags) == {"all", "kitchen", "home"}
    columns = {(tag.split(".")[0], tag.split(".")[1]) for tag in tags["all"]}
    assert columns == {
        ("u", "price"), ("f", "price"), ("f", "name"), ("f", "rating"), ("f", "rating_up"), ("f", "newest"),
    }  # fmt: skip


def test_a_first_rating_names_the_unrated_end_of_the_ascending_order_and_the_new_value():
    before, after = listing(rating=Decimal("0.00")), listing(rating=Decimal("4.50"))
    named = write_tags(before, after)["all"]
    top = 2 ** list_deps.DEPTH["rating_up"] - 1
    assert bucket("rating_up", list_deps.rating_up(Decimal("0.00"))) == top  # after every rated value
    assert list_deps._tag("u", "rating_up", 0, top) in named
    assert list_deps._tag("u", "rating_up", 0, bucket("rating_up", Decimal("4.50"))) in named
    assert list_deps._tag("u", "rating", 0, 0) in named  # -rating keeps them last by their 0


def test_a_move_names_only_the_scopes_it_left_and_entered():
    before, after = listing(), listing(scopes=frozenset({"all", "garden"}))
    tags = write_tags(before, after)
    assert set(tags) == {"kitchen", "home", "garden"}
    assert {tag.split(".")[1] for tag in tags["garden"]} == set(list_deps.DEPTH)


def test_deactivating_names_every_order_in_every_scope():
    tags = write_tags(listing(), None)
    assert set(tags) == {"all", "kitchen", "home"}
    assert list_deps.guards(tags["all"]) == set(list_deps.DEPTH)


def test_a_first_page_covers_everything_below_the_row_after_it():
    query = {
        "sort": "price",
        "brand": None,
        "min_price": None,
        "max_price": None,
        "in_stock": None,
        "q": None,
    }
    tags = page_tags(query, None, Decimal("20.00"))
    assert tags[0] == list_deps.SCOPE_TAG
    cheap, dear = listing(price=Decimal("0.50")), listing(price=Decimal("500.00"))
    named_cheap = {t for t in write_tags(cheap, replace(cheap, price=Decimal("0.60"))).get("all", ())}
    named_dear = {t for t in write_tags(dear, replace(dear, price=Decimal("600.00"))).get("all", ())}
    assert set(tags) & named_cheap
    assert not set(tags) & named_dear


def test_descending_pages_cover_from_the_row_after_them_up_to_their_cursor():
    query = {
        "sort": "-price",
        "brand": None,
        "min_price": None,
        "max_price": None,
        "in_stock": None,
        "q": None,
    }
    tags = set(page_tags(query, Decimal("100.00"), Decimal("50.00")))
    inside, above = listing(price=Decimal("70.00")), listing(price=Decimal("900.00"))
    assert tags & set(write_tags(inside, replace(inside, price=Decimal("71.00")))["all"])
    assert not tags & set(write_tags(above, replace(above, price=Decimal("901.00")))["all"])
