"""The one place a write's side effects are declared.

Each function is called inside the write's transaction and registers work
that runs only after that transaction commits (see ``api.db.after_commit``),
so nothing outside PostgreSQL ever reflects a write that was rolled back.
Today that work is recomputing category aggregates; cache invalidation and
background jobs hook in here too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlalchemy.orm import Session

from ..db import after_commit
from . import aggregates

Listener = Callable[[str, dict], None]
"""Called as ``listener(event, details)`` after a commit; registered per app in ``api.db``."""


def product_changed(db: Session, product_id: int, category_ids: Iterable[int]) -> None:
    _after_commit(db, "product_changed", product_id=product_id, category_ids=sorted(set(category_ids)))


def review_added(db: Session, product_id: int, category_id: int) -> None:
    _after_commit(db, "review_added", product_id=product_id, category_ids=[category_id])


def category_changed(db: Session, category_ids: Iterable[int]) -> None:
    _after_commit(db, "category_changed", category_ids=sorted(set(category_ids)))


def _after_commit(db: Session, event: str, **details) -> None:
    engine = db.get_bind()
    listeners: list[Listener] = db.info.get("listeners", [])

    def run() -> None:
        with engine.begin() as conn:
            ids = aggregates.categories_affected(conn, details["category_ids"])
            aggregates.recompute_category_stats(conn, ids)
        for listener in listeners:
            listener(event, details)

    after_commit(db, run)
