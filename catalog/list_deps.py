"""What a product-list page depends on, and which pages a write can change: tags by value.

A cached list page holds ordered ids (``catalog.product_pages``); the items' bodies come from the
products' own entries, so a write that changes only what a page displays invalidates no page.
What a write can change is a page's membership or order, and only where the product's sort
value was or now is. So a page is registered under dependency tags (``cache`` drops entries by
tag) that name:

* its **scope** (``all``, or the category filter's slug): every tag lives in the scope's slot;
* its **family**: ``u`` for pages filtered by category alone, ``f`` for pages with any other
  filter (brand, price range, stock, full text), whose membership a change of those fields moves;
* its **sort column** and the **range of values** it covers, as nodes of a segment tree over
  that column's value buckets (price bands, rating hundredths, creation hours; one bucket for
  names, whose collation order no bucket function here can follow). A page covers the values from
  its cursor's key to the key of the row after its last (so a deletion past its end that ends the
  listing is seen), open-ended where there is no cursor or no further row.

A write compares the product's list-relevant state before and after (:class:`Listing`, ``None``
when inactive or absent) per scope, family and column; where they differ it names every tree
node above the old and the new value's bucket. A page is dropped exactly when one of its nodes is
named: when the old or the new value falls in its range, which is when its content or order can
change. Category writes (a scope's membership) drop every page of the scopes they touch.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from .models import Product

ALL = "all"
"""The scope of lists without a category filter."""

SCOPE_TAG = "scope"
"""Every page of a scope is registered under it: category writes drop the scope's pages."""

COLUMNS = {"name": "name", "price": "price", "-price": "price", "rating": "rating_up", "-rating": "rating"}
COLUMNS["newest"] = "newest"
DESCENDING = frozenset({"-price", "-rating", "newest"})
DEPTH = {"name": 0, "price": 10, "rating": 9, "rating_up": 9, "newest": 17}
"""Levels of each column's segment tree: 2**depth buckets."""

UNRATED_LAST = Decimal(6)
"""``sort=rating``'s value for an unrated product (average 0): above every rating (1-5), so unrated
products come last in both rating orders (``-rating`` has them last by their 0). The ascending
order is its own column, ``rating_up``, because a product's value in it differs from ``rating``."""


def rating_up(average: Decimal) -> Decimal:
    """A product's value in the ascending rating order."""
    return UNRATED_LAST if average == 0 else average


EXTRA_FILTERS = ("brand", "min_price", "max_price", "in_stock", "q")

# Price bands: 1,024 geometric steps from 0.01 to the column's maximum, about 2.7% wide.
_PRICE_TOP = Decimal("9999999999.99")
_PRICE_BOUNDS = [
    Decimal(0.01 * (float(_PRICE_TOP) / 0.01) ** (step / 2 ** DEPTH["price"])).quantize(Decimal("0.01"))
    for step in range(1, 2 ** DEPTH["price"])
]
_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Listing:
    """A product's state as lists see it: the scopes it is listed in and its sort values; the
    fields other filters read. Display-only fields (description aside, which full text reads,
    stock beyond in/out) are not here: a change of them moves no page."""

    scopes: frozenset[str]
    name: str
    price: Decimal
    rating: Decimal
    created_at: datetime
    filtered: tuple


def listing(product: Product) -> Listing | None:
    """``product``'s listing, or None when lists do not show it (inactive)."""
    if not product.is_active:
        return None
    category = product.category
    scopes = {ALL, category.slug} | ({category.parent.slug} if category.parent is not None else set())
    searchable = (product.brand.casefold(), product.name, product.description)
    return Listing(
        frozenset(scopes),
        product.name,
        product.price,
        product.rating.average,
        product.created_at,
        (*searchable, product.price, product.stock > 0),
    )


def family(query: dict) -> str:
    return "f" if any(query[name] is not None for name in EXTRA_FILTERS) else "u"


def page_tags(query: dict, after: object | None, beyond: object | None) -> tuple[str, ...]:
    """Tags of a page of ``query``: ``after`` is its cursor's sort value (None on a first page),
    ``beyond`` the sort value of the row after its last (None when it is the last page)."""
    column = COLUMNS[query["sort"]]
    start, end = (beyond, after) if query["sort"] in DESCENDING else (after, beyond)
    low = 0 if start is None else bucket(column, start)
    high = 2 ** DEPTH[column] - 1 if end is None else bucket(column, end)
    nodes = _cover(DEPTH[column], low, high)
    return (SCOPE_TAG, *(_tag(family(query), column, level, index) for level, index in nodes))


def write_tags(old: Listing | None, new: Listing | None) -> dict[str, set[str]]:
    """Per scope, the tags of every page a change of one product from ``old`` to ``new`` can move."""
    scopes = (old.scopes if old else frozenset()) | (new.scopes if new else frozenset())
    tags: dict[str, set[str]] = {}
    for scope in scopes:
        before = old if old and scope in old.scopes else None
        after = new if new and scope in new.scopes else None
        named = set(_moved(before, after))
        if named:
            tags[scope] = named
    return tags


def guards(tags: Iterable[str]) -> set[str]:
    """The sort columns whose fills in flight a write naming ``tags`` must void."""
    return {tag.split(".")[1] for tag in tags if tag != SCOPE_TAG}


def bucket(column: str, value) -> int:
    if column == "price":
        return bisect_right(_PRICE_BOUNDS, Decimal(value))
    if column in ("rating", "rating_up"):
        return min(max(int(Decimal(value) * 100), 0), 2 ** DEPTH[column] - 1)
    if column == "newest":
        hours = int((value - _EPOCH).total_seconds() // 3600)
        return min(max(hours, 0), 2 ** DEPTH["newest"] - 1)
    return 0


def _moved(before: Listing | None, after: Listing | None) -> Iterator[str]:
    for column in DEPTH:
        for name in ("u", "f"):
            if _signature(name, column, before) != _signature(name, column, after):
                for state in (before, after):
                    if state is not None:
                        yield from _ancestors(name, column, bucket(column, _value(column, state)))


def _signature(name: str, column: str, state: Listing | None) -> object:
    if state is None:
        return None
    value = _value(column, state)
    return (value, state.filtered) if name == "f" else value


def _value(column: str, state: Listing) -> object:
    if column == "rating_up":
        return rating_up(state.rating)
    return state.created_at if column == "newest" else getattr(state, column)


def _ancestors(name: str, column: str, leaf: int) -> Iterator[str]:
    for level in range(DEPTH[column] + 1):
        yield _tag(name, column, level, leaf >> level)


def _cover(depth: int, low: int, high: int) -> list[tuple[int, int]]:
    """The fewest tree nodes (level, index) whose buckets together are exactly ``low..high``."""
    nodes, level = [], 0
    while low <= high:
        if low & 1:
            nodes.append((level, low))
            low += 1
        if not high & 1:
            nodes.append((level, high))
            high -= 1
        if low > high or level == depth:
            break
        low, high, level = low >> 1, high >> 1, level + 1
    return nodes


def _tag(name: str, column: str, level: int, index: int) -> str:
    return f"{name}.{column}.{level}.{index}"
