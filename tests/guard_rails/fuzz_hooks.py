"""schemathesis hooks for the fuzz run (``SCHEMATHESIS_HOOKS=tests.guard_rails.fuzz_hooks``).

A product names its category by slug, and only a category that exists is
accepted (a 422 otherwise): a rule about the data, not the document, which no
generator can guess. Valid product writes are pointed at the categories the
run created (``SHELF_FUZZ_CATEGORIES``, comma-separated), so they exercise the
write instead of all ending in that 422. Invalid ones are sent as generated.
"""

from __future__ import annotations

import os
import zlib

import schemathesis
from schemathesis.generation import GenerationMode

PRODUCT_WRITES = ("POST /v1/products", "PATCH /v1/products/{product_id}")


@schemathesis.hook
def before_call(context, case, **_kwargs):
    categories = [slug for slug in os.environ.get("SHELF_FUZZ_CATEGORIES", "").split(",") if slug]
    body = case.body
    if (
        categories
        and case.operation.label in PRODUCT_WRITES
        and case.meta is not None
        and case.meta.generation.mode is GenerationMode.POSITIVE
        and isinstance(body, dict)
        and isinstance(body.get("category"), str)
    ):
        # The same generated slug always maps to the same category: a failure replays as it ran.
        body["category"] = categories[zlib.crc32(body["category"].encode()) % len(categories)]
