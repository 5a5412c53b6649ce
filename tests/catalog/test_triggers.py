"""What a write triggers in the background (catalog.recomputes.requests_for): recomputes, by target.

A review asks for its product's rating (and through it its categories' stats); a product write
asks for its categories' stats; a recompute's own change asks for nothing, or recomputes would
trigger each other forever.
"""

from __future__ import annotations

from catalog.recomputes import requests_for
from catalog.services.effects import AGGREGATES, CATEGORY, PRODUCT, REVIEW, Change


def test_a_review_asks_for_its_products_recompute():
    assert requests_for(Change(REVIEW, (7,), (3,))) == [
        {"kind": "recompute_product", "target": "product:7", "args": [7]}
    ]


def test_a_product_write_asks_for_its_categories_stats_once_for_all_of_them():
    assert requests_for(Change(PRODUCT, (7,), (3, 5))) == [
        {"kind": "recompute_categories", "target": "categories:3,5", "args": [[3, 5]]}
    ]


def test_a_category_write_asks_for_its_stats():
    assert requests_for(Change(CATEGORY, (), (4,))) == [
        {"kind": "recompute_categories", "target": "categories:4", "args": [[4]]}
    ]


def test_a_change_without_categories_asks_for_nothing():
    assert requests_for(Change(CATEGORY, (), (), ("gone",))) == []


def test_a_recompute_asks_for_no_further_recompute():
    assert requests_for(Change(AGGREGATES, (7,), (3,))) == []
