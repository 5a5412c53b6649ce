"""Fuzz the whole API from its own OpenAPI document (schemathesis), writes included.

Every operation in ``/openapi.json`` is called with generated requests, valid
and invalid, against an in-process app over the test database, with the write
token. Checks: no 5xx, status codes and content types the document lists, and
bodies that match the documented schemas. The test suite runs a bounded number
of examples per operation (``SHELF_FUZZ_EXAMPLES``, 10 by default); ``python
scripts/fuzz.py --examples 500`` runs the long version. Rate limits are off:
the fuzzer would spend the write budget in seconds, and 429s are not what it
is looking for.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.factories import make_category, make_product

# Hypothesis caches what it learns in .hypothesis/ under the working directory; not in the repository.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "shelf-hypothesis")

EXAMPLES = int(os.environ.get("SHELF_FUZZ_EXAMPLES", "10"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
SETTINGS = hypothesis_settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # no .hypothesis folder in the work tree
    derandomize=True,  # the same examples every run, so a red build can be replayed
    phases=[Phase.explicit, Phase.generate],  # no shrinking: the report shows the request as sent
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def fuzzed(make_app, engine):
    """The app's OpenAPI schema, loaded from the app itself, and path values that exist."""
    parent = make_category(engine, slug="fuzz-parent")
    child = make_category(engine, parent=parent, slug="fuzz-child")
    products = [make_product(engine, child) for _ in range(3)]
    app = make_app(rate_limits_enabled=False)
    app.config["PROPAGATE_EXCEPTIONS"] = False  # a crash is a 500 the checks report, with its request
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    return schema, {"product_id": products[0].id, "slug": child.slug}


def passes(operation, existing: dict):
    """Valid and invalid requests; valid ones again against rows that exist, where the path names one."""
    yield "positive", {"generation_mode": GenerationMode.POSITIVE}
    names = {parameter.name for parameter in operation.path_parameters}
    if names or list(operation.query) or list(operation.body):  # else there is nothing to make invalid
        yield "negative", {"generation_mode": GenerationMode.NEGATIVE}
    if names and names <= set(existing):
        yield "existing", {"path_parameters": {name: existing[name] for name in names}}


def fuzz(operation, strategy_args: dict, headers: dict) -> str | None:
    """The failure report of one pass over ``operation``, or None."""

    @given(case=operation.as_strategy(**strategy_args))
    @SETTINGS
    def run(case):
        case.call_and_validate(headers=headers, checks=CHECKS)

    try:
        run()
    # schemathesis' FailureGroup is a BaseExceptionGroup; every failure is collected and reported together.
    except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001
        return str(exc)
    return None


def test_the_api_keeps_its_documented_contract(fuzzed, auth):
    schema, existing = fuzzed
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for name, strategy_args in passes(operation, existing):
            if report := fuzz(operation, strategy_args, auth):
                failures.append(f"=== {operation.label} ({name}) ===\n{report}")
    assert not failures, "\n\n".join(failures)
