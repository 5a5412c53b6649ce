"""Turn PostgreSQL constraint violations into domain errors that name the field.

Schemas validate first; these are the backstop for what only the database
can decide (uniqueness under concurrency, references, rows deleted meanwhile).
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from .errors import Conflict, InvalidInput

UNIQUE_VIOLATION = "23505"
FOREIGN_KEY_VIOLATION = "23503"
CHECK_VIOLATION = "23514"

# constraint name -> the API field it guards
CONSTRAINT_FIELDS = {
    "products_sku_key": "sku",
    "products_slug_key": "slug",
    "categories_slug_key": "slug",
    "products_category_id_fkey": "category",
    "categories_parent_id_fkey": "parent",
}


def flush_or_raise(db: Session) -> None:
    try:
        db.flush()
    except IntegrityError as exc:
        db.rollback()
        raise _domain_error(exc) from None
    except StaleDataError:
        db.rollback()
        raise Conflict("the resource was changed concurrently; fetch it and retry") from None


def _domain_error(exc: IntegrityError):
    diag = getattr(exc.orig, "diag", None)
    constraint = getattr(diag, "constraint_name", None) or ""
    field = CONSTRAINT_FIELDS.get(constraint)
    code = getattr(exc.orig, "pgcode", None)
    if code == UNIQUE_VIOLATION:
        return Conflict(f"{field or 'value'} already exists", field=field)
    if code == FOREIGN_KEY_VIOLATION:
        return Conflict(f"{field or 'resource'} is still referenced", field=field)
    if code == CHECK_VIOLATION:
        return InvalidInput(f"value rejected by rule {constraint}", field=field)
    return Conflict("the change conflicts with the current data")
