"""Which PostgreSQL and Redis a command in a second shell talks to, next to a running ``make run``.

``make run`` serves on embedded servers with random ports (``scripts/dev_services.py``), so a
``flask --app api ...`` typed in another shell without ``DATABASE_URL`` / ``REDIS_URL`` would fall
back to ``127.0.0.1:5432/shelf`` and ``127.0.0.1:6379/0``: maybe someone else's servers. Each
``dev_services.py run`` records the URLs it exported in ``services.json`` of the data folder
(``SHELF_DATA_DIR``, default ``.data/``), under its pid; :func:`discover` reads them back for the
live ``make run`` (pid alive, ports answering), and :func:`targets` says where each URL came from, so
the CLI can refuse to fall back to a default it was never told about (:func:`refusal`).

Standard library only: ``scripts/dev_services.py``, which writes the file this module reads, loads
it by path (importing the ``api`` package would start Flask).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
URL_VARS = ("DATABASE_URL", "REDIS_URL")
MAKE_RUN_MARK = "scripts/run.sh"
"""How the ``make run`` entry is told from ``make test``'s (whose database is a throwaway one)."""


@dataclass(frozen=True)
class Target:
    """Where one URL came from: ``env``, ``make run`` (pid), or ``default`` (nobody said)."""

    var: str
    url: str
    source: str

    def describe(self) -> str:
        return f"{self.var}={redacted(self.url)} ({self.source})"


def data_dir(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("SHELF_DATA_DIR") or ROOT / ".data").resolve()


def discover(environ: Mapping[str, str]) -> tuple[int, dict[str, str]] | None:
    """(pid, exported URLs) of the running ``make run`` in the data folder, or None."""
    try:
        state = json.loads((data_dir(environ) / "services.json").read_text())
    except (OSError, ValueError):
        return None
    for pid, entry in (state.get("commands") or {}).items():
        exports = entry.get("exports") or {}
        if MAKE_RUN_MARK not in " ".join(entry.get("argv") or []) or not pid_alive(int(pid)):
            continue
        if all(answers(url) for url in exports.values()):
            return int(pid), {var: url for var, url in exports.items() if var in URL_VARS}
    return None


def with_local_servers(environ: Mapping[str, str]) -> tuple[dict[str, str], list[Target]]:
    """``environ`` with unset URLs taken from a running ``make run``, and where each URL came from."""
    env = dict(environ)
    found = discover(environ) if not all(env.get(var) for var in URL_VARS) else None
    targets = []
    for var in URL_VARS:
        if env.get(var):
            targets.append(Target(var, env[var], "from the environment"))
        elif found and var in found[1]:
            env[var] = found[1][var]
            targets.append(Target(var, env[var], f"the embedded server of `make run`, pid {found[0]}"))
        else:
            targets.append(Target(var, "", "unset"))
    return env, targets


def refusal(targets: list[Target], defaults: Mapping[str, str]) -> str | None:
    """Why a CLI command must not run: a URL nobody gave would fall back to a default server."""
    unset = [target.var for target in targets if target.source == "unset"]
    if not unset:
        return None
    named = ", ".join(f"{var}={redacted(defaults[var])}" for var in unset)
    return (
        f"{' and '.join(unset)} {'is' if len(unset) == 1 else 'are'} unset and no `make run` is running "
        f"in {data_dir(os.environ)}; this command would use the defaults {named}, which may be another "
        "project's servers. Start `make run` in another shell, or set those variables to the servers "
        "you mean."
    )


def redacted(url: str) -> str:
    """``url`` without its password."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


def pid_alive(pid: int) -> bool:
    """True if ``pid`` runs and is not a zombie waiting to be reaped."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): trust kill(0)
    return stat_line.rsplit(")", 1)[-1].split()[0] != "Z"


def answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=1):
            return True
    except (OSError, ValueError):
        return False
