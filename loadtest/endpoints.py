"""The endpoint names the personas report under (Locust's ``name=``), shared with the report.

Kept apart from ``locustfile.py`` because importing Locust patches the standard library for gevent,
which the runner and the report, plain threaded programs, must not have.
"""

DETAIL = "GET /v1/products/{id}"
REVALIDATE = "GET /v1/products/{id} If-None-Match"
LIST = "GET /v1/products"
TREE = "GET /v1/categories"
CATEGORY = "GET /v1/categories/{slug}"
REVIEWS = "GET /v1/products/{id}/reviews"
PATCH = "PATCH /v1/products/{id}"
POST_REVIEW = "POST /v1/products/{id}/reviews"
HEALTHZ = "GET /healthz"

PERSONA_ENDPOINTS = {
    "ShopperUser": (DETAIL, REVALIDATE),
    "BrowserUser": (LIST, TREE, CATEGORY, REVIEWS),
    "WriterUser": (PATCH, POST_REVIEW),
    "FloorUser": (HEALTHZ,),
}
"""Which endpoint names each persona sends (the smoke test checks all of them were exercised)."""

CHECK_EVERY = 20
"""One response in this many per user has its body checked (the default of ``--check-every``)."""

MAX_PAGES = 3
"""A browser follows ``next_cursor`` up to this many pages (the default of ``--max-pages``)."""
