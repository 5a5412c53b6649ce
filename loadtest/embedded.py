"""Running a benchmark on embedded servers when DATABASE_URL / REDIS_URL are unset, as ``make run`` does.

The command runs itself again under ``scripts/dev_services.py run --database NAME``, which starts
whichever embedded server is missing (PostgreSQL 16 from pgserver, Valkey), exports its URL, and
stops it when the command ends. ``MARK`` tells the second run that its Redis URL is the embedded
server's db 0, which it moves to the benchmark's own db (``make run`` keeps db 0 when it shares the
servers).
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

from .server import ROOT

MARK = "SHELF_BENCH_EMBEDDED"


def servers_named(environ: dict[str, str]) -> bool:
    return bool(environ.get("DATABASE_URL") and environ.get("REDIS_URL"))


def rerun_on_embedded_servers(module: str, argv: list[str], database: str) -> NoReturn:
    print(  # noqa: T201
        f"{module}: DATABASE_URL / REDIS_URL unset: running on embedded servers (scripts/dev_services.py)",
        file=sys.stderr,
        flush=True,
    )
    command = [sys.executable, str(ROOT / "scripts" / "dev_services.py"), "run", "--database", database]
    command += ["--", sys.executable, "-m", module, *argv]
    os.execve(sys.executable, command, {**os.environ, MARK: "1"})  # noqa: S606
