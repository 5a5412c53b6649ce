"""Fuzz the whole API from its own OpenAPI document with the schemathesis CLI, writes included.

Shelf runs under gunicorn, as deployed, over the test database holding the demo
catalog, and ``st run`` calls every operation in ``/openapi.json`` with the
write token: the coverage phase (each constraint's edges, valid and invalid)
and the fuzzing phase (generated requests, valid and invalid), with
``SHELF_FUZZ_EXAMPLES`` examples per operation (10 here; ``python
scripts/fuzz.py`` runs 100). schemathesis' JSON report goes to
``SHELF_FUZZ_REPORT`` when set. Checks: no 5xx, status codes and content types
the document lists, bodies that match the documented schemas. And no
operation may "mostly reject generated data": valid requests by the document
must be valid to the API, or the document is looser than the API. Rate limits
are off: the fuzzer would spend the write budget in seconds, and 429s are not
what it is looking for.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from catalog.seed import seed_catalog
from tests.test_gunicorn import ROOT, free_port, start, wait_until_serving

pytestmark = pytest.mark.system

EXAMPLES = int(os.environ.get("SHELF_FUZZ_EXAMPLES", "10"))
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
PHASES = "coverage,fuzzing"
SEED = 20261201  # the same requests every run, so a red build can be replayed


@pytest.fixture
def catalog(engine):
    """The demo catalog (the categories the document's examples name among them): the slugs of the
    categories products go in, and of the top-level ones."""
    seed_catalog(engine, products=200, reviews=500, seed=SEED)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT slug, parent_id IS NULL FROM categories")).all()
    return {
        "SHELF_FUZZ_CATEGORIES": ",".join(slug for slug, top in rows if not top),
        "SHELF_FUZZ_PARENTS": ",".join(slug for slug, top in rows if top),
    }


@pytest.fixture
def served(settings, redis_client, catalog):
    token = "fuzz-" + secrets.token_hex(8)
    port = free_port()
    extra = {
        "SHELF_API_TOKENS": f"fuzz:{token}",
        "SHELF_SECRET_KEY": settings.secret_key,
        "SHELF_RATE_LIMITS_ENABLED": "false",
        "SHELF_JOBS_EAGER": "true",
        "SHELF_WARM_ON_START": "false",
    }
    process = start(settings, port, stderr=subprocess.DEVNULL, **extra)
    base = wait_until_serving(process, port)
    yield base, token, catalog
    process.terminate()
    process.wait(timeout=15)


def schemathesis_run(base: str, token: str, categories: dict, report) -> subprocess.CompletedProcess:
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "run", f"{base}/openapi.json"),
        *("--max-examples", str(EXAMPLES), "--phases", PHASES, "--checks", CHECKS),
        *("--header", f"Authorization: Bearer {token}", "--seed", str(SEED), "--workers", "1"),
        *("--generation-database", "none", "--no-color"),
        *("--report", "json", "--report-json-path", str(report)),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),  # for the hooks module
        "SCHEMATHESIS_HOOKS": "tests.api.guards.fuzz_hooks",
        **categories,  # for the hooks
    }
    # The CLI keeps a cache in its working folder: the report's, never the work tree.
    return subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
        command, cwd=report.parent, env=env, capture_output=True, text=True, timeout=3600
    )


def test_the_api_keeps_its_documented_contract(served, tmp_path):
    base, token, categories = served
    report_path = Path(os.environ.get("SHELF_FUZZ_REPORT") or tmp_path / "report.json")
    run = schemathesis_run(base, token, categories, report_path)
    output = run.stdout + run.stderr
    assert report_path.exists(), output
    report = json.loads(report_path.read_text())
    assert report["failures"] == [], output
    assert report["errors"] == [], output
    assert report["warnings"]["validation_mismatch"] == [], output
    assert run.returncode == 0, output
