"""The one place a write's side effects are declared.

A service describes what it changed as a :class:`Change` and calls
:func:`record` inside the write's transaction. Each registered effect (the
app registers them on the sessionmaker, see ``catalog.runtime``) may do work in that
transaction, such as writing a cache-invalidation outbox row, and returns
what must happen only after the commit succeeds; nothing outside PostgreSQL
ever reflects a write that rolled back. Aggregates are recomputed by jobs, which record their
own changes, so the entries showing aggregates are invalidated after the
recompute commits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session

from ..db import after_commit
from ..list_deps import Listing

PRODUCT, REVIEW, CATEGORY = "product", "review", "category"
AGGREGATES = "aggregates"
"""A recompute job's change: derived values only, which must not schedule another recompute."""


@dataclass(frozen=True)
class Change:
    """What a committed write touched, in ids (and slugs no longer in the database); for each
    product whose listing it changed, the listing before and after (``catalog.list_deps``); and
    whether category product counts (the category tree) may have moved."""

    kind: str
    product_ids: tuple[int, ...] = ()
    category_ids: tuple[int, ...] = ()
    gone_category_slugs: tuple[str, ...] = ()
    listings: tuple[tuple[Listing | None, Listing | None], ...] = ()
    counts_changed: bool = True


class Effect(Protocol):
    def prepare(self, db: Session, change: Change) -> Callable[[], None] | None:
        """Work inside the transaction; returns the work to run once it has committed."""


def record(db: Session, change: Change) -> None:
    for effect in db.info.get("effects", ()):
        callback = effect.prepare(db, change)
        if callback is not None:
            after_commit(db, callback)


def product_changed(
    db: Session, product_id: int, category_ids: Iterable[int], before: Listing | None, after: Listing | None
) -> None:
    categories = tuple(sorted(set(category_ids)))
    record(db, Change(PRODUCT, (product_id,), categories, listings=((before, after),)))


def review_added(db: Session, product_id: int, category_id: int) -> None:
    record(db, Change(REVIEW, (product_id,), (category_id,)))


def category_changed(db: Session, category_ids: Iterable[int], gone_slugs: Iterable[str] = ()) -> None:
    record(db, Change(CATEGORY, (), tuple(sorted(set(category_ids))), tuple(sorted(set(gone_slugs)))))
