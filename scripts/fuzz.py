"""A longer fuzz of the whole API than the test suite runs: ``python scripts/fuzz.py --examples 500``.

It runs the suite's schemathesis test (tests/guard_rails/test_fuzz.py) with
``SHELF_FUZZ_EXAMPLES`` examples per operation and pass, against the servers
DATABASE_URL / REDIS_URL name or, when they are unset, the embedded ones
``scripts/dev_services.py`` starts (as ``make test`` does). Extra arguments go
to pytest. The exit code is pytest's; the failure report lists every finding.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUZZ_TEST = "tests/guard_rails/test_fuzz.py"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=500, help="examples per operation and pass (500)")
    args, pytest_args = parser.parse_known_args(argv)
    pytest = [sys.executable, "-m", "pytest", FUZZ_TEST, "-p", "no:cacheprovider", *pytest_args]
    command = [sys.executable, "scripts/dev_services.py", "run", "--", *pytest]
    env = {**os.environ, "SHELF_FUZZ_EXAMPLES": str(args.examples)}
    return subprocess.call(command, cwd=ROOT, env=env)  # noqa: S603 - our own interpreter and scripts


if __name__ == "__main__":
    sys.exit(main())
