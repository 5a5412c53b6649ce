"""schemathesis hooks for the fuzz run (``SCHEMATHESIS_HOOKS=tests.api.guards.fuzz_hooks``).

A product names its category, and a category its parent, by slug: only a
category that exists is accepted, and categories nest two levels deep (a 422
otherwise). Those are rules about the data, not the document, which no
generator can guess. Valid writes are pointed at categories that exist: a
product at one of ``SHELF_FUZZ_CATEGORIES``, a category's parent at one of the
top-level ``SHELF_FUZZ_PARENTS`` (or none, when the category changed is itself
top-level and has children), both comma-separated. Invalid requests are sent
as generated.
"""

from __future__ import annotations

import os
import zlib

import schemathesis
from schemathesis.generation import GenerationMode

PRODUCT_WRITES = ("POST /v1/products", "PATCH /v1/products/{product_id}")
CATEGORY_WRITES = ("POST /v1/categories", "PATCH /v1/categories/{slug}")


def slugs(name: str) -> list[str]:
    return [slug for slug in os.environ.get(name, "").split(",") if slug]


def pick(options: list[str], generated: str) -> str:
    """The same generated slug always maps to the same one: a failure replays as it ran."""
    return options[zlib.crc32(generated.encode()) % len(options)]


def existing_reference(case, field: str) -> str | None:
    """The reference ``field`` of a valid write, or None when the case is not one."""
    body = case.body
    valid = case.meta is not None and case.meta.generation.mode is GenerationMode.POSITIVE
    if valid and isinstance(body, dict) and isinstance(body.get(field), str):
        return body[field]
    return None


@schemathesis.hook
def before_call(context, case, **_kwargs):
    label = case.operation.label
    if (
        label in PRODUCT_WRITES
        and (generated := existing_reference(case, "category"))
        and slugs("SHELF_FUZZ_CATEGORIES")
    ):
        case.body["category"] = pick(slugs("SHELF_FUZZ_CATEGORIES"), generated)
    if (
        label in CATEGORY_WRITES
        and (generated := existing_reference(case, "parent"))
        and slugs("SHELF_FUZZ_PARENTS")
    ):
        top_level = slugs("SHELF_FUZZ_PARENTS")
        moved = (case.path_parameters or {}).get("slug")
        case.body["parent"] = None if moved in top_level else pick(top_level, generated)
