"""The long fuzz of the whole API: ``python scripts/fuzz.py`` (100 examples per operation).

It runs the suite's schemathesis test (tests/api/guards/test_fuzz.py): Shelf
under gunicorn, the schemathesis CLI with the coverage and fuzzing phases and
the checks not_a_server_error, status_code_conformance,
content_type_conformance and response_schema_conformance, failing on any
finding or on an operation that mostly rejects data the document calls valid.
``--examples`` sets ``SHELF_FUZZ_EXAMPLES`` (the suite runs 10). It uses the
servers DATABASE_URL / REDIS_URL name or, when they are unset, the embedded
ones ``scripts/dev_services.py`` starts (as ``make test`` does). Extra
arguments go to pytest. The exit code is pytest's; the failure report is
schemathesis' own output, and a summary of its JSON report (``--report``) is
printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUZZ_TEST = "tests/api/guards/test_fuzz.py"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=100, help="examples per operation (100)")
    parser.add_argument("--report", type=Path, default=Path(tempfile.gettempdir()) / "shelf-fuzz-report.json")
    args, pytest_args = parser.parse_known_args(argv)
    pytest = [sys.executable, "-m", "pytest", FUZZ_TEST, "-p", "no:cacheprovider", *pytest_args]
    command = [sys.executable, "scripts/dev_services.py", "run", "--", *pytest]
    report = args.report.resolve()
    report.unlink(missing_ok=True)
    env = {**os.environ, "SHELF_FUZZ_EXAMPLES": str(args.examples), "SHELF_FUZZ_REPORT": str(report)}
    code = subprocess.call(command, cwd=ROOT, env=env)  # noqa: S603 - our own interpreter and scripts
    if report.exists():
        print(summary(json.loads(report.read_text())), f"(report: {report})")
    return code


def summary(report: dict) -> str:
    cases = report["test_cases"]
    warned = {kind: labels for kind, labels in report["warnings"].items() if labels}
    return (
        f"schemathesis: {cases['generated']} test cases, {cases['with_failures']} with failures,"
        f" {len(report['errors'])} errors, warnings: {warned or 'none'}, {report['running_time']:.0f} s"
    )


if __name__ == "__main__":
    sys.exit(main())
