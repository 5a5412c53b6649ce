"""Starting Shelf the way ``scripts/run.sh`` does, on a free port, and running its Flask CLI commands.

Every arm gets a fresh ``gunicorn -c gunicorn.conf.py 'api:create_app()'`` with the default workers
and threads, told apart only by the environment the arm sets (``SHELF_CACHE_ENABLED=false`` for the
uncached arm). The server's log (one JSON line per request at the default INFO level, as in
production) goes to a file, cut to its last lines once the server stops so results stay small.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from catalog.config import Settings

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0
LOG_LINES_KEPT = 200


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def venv_tool(name: str) -> str:
    """A console script installed beside this Python (gunicorn, locust, py-spy), else from PATH."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def flask(args: list[str], env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    """``flask --app api ARGS`` in the repository, its output captured."""
    command = [sys.executable, "-m", "flask", "--app", "api", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=check)  # noqa: S603


@dataclass
class Server:
    base_url: str
    process: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid


def wait_healthy(base_url: str, process: subprocess.Popen, timeout: float = START_TIMEOUT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode} before answering")
        try:
            with urllib.request.urlopen(base_url + "/healthz", timeout=1):  # noqa: S310 - our own server
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the server did not answer {base_url}/healthz within {timeout:.0f}s")


SHELF_APP = "api:create_app()"
SERVERS = ("gunicorn", "granian")
"""The WSGI servers the ceiling arms compare (loadtest.ceiling); every other arm runs on gunicorn."""


def server_command(name: str, target: str, port: int, env: dict[str, str]) -> list[str]:
    """The command serving ``target`` ("module:callable" or "module:factory()") with ``name``.

    gunicorn runs with gunicorn.conf.py as scripts/run.sh starts it; granian with the same workers
    and threads per worker, read from ``env`` by Shelf's Settings as gunicorn.conf.py reads them.
    """
    if name == "gunicorn":
        return [venv_tool("gunicorn"), "-c", "gunicorn.conf.py", target]
    factory = target.endswith("()")
    settings = Settings.from_env(env)
    workers, threads = str(settings.web_workers), str(settings.web_threads)
    return [
        *(venv_tool("granian"), "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port)),
        *("--workers", workers, "--blocking-threads", threads, "--no-ws", "--log-level", "warning"),
        *(["--factory", target.removesuffix("()")] if factory else [target]),
    ]


@contextmanager
def serve(name: str, env: dict[str, str], log_path: Path, target: str = SHELF_APP) -> Iterator[Server]:
    """Serve ``target`` with server ``name`` on a free port until the block ends. /metrics adds up
    every worker under both: gunicorn.conf.py makes a fresh metrics folder, and granian gets one here."""
    port = free_port()
    server_env = {**env, "SHELF_HOST": "127.0.0.1", "SHELF_PORT": str(port)}
    server_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with tempfile.TemporaryDirectory(prefix="shelf-metrics-") as metrics_dir:
        if name != "gunicorn":
            server_env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        command = server_command(name, target, port, server_env)
        with log_path.open("wb") as log:
            process = subprocess.Popen(  # noqa: S603 - our own server, fixed arguments
                command, cwd=ROOT, env=server_env, stdout=log, stderr=subprocess.STDOUT
            )
        server = Server(f"http://127.0.0.1:{port}", process, log_path)
        try:
            wait_healthy(server.base_url, process)
            yield server
        finally:
            stop(process)
            keep_tail(log_path, LOG_LINES_KEPT)


@contextmanager
def gunicorn(env: dict[str, str], log_path: Path) -> Iterator[Server]:
    """Serve ``api:create_app()`` with gunicorn.conf.py on a free port until the block ends."""
    with serve("gunicorn", env, log_path) as server:
        yield server


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def keep_tail(path: Path, lines: int) -> None:
    """Cut a log to its last ``lines`` lines (the request lines of a 60 s arm run to tens of MB)."""
    if not path.exists():
        return
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - 400 * lines))
        tail = handle.read().splitlines()[-lines:]
    path.write_bytes(b"\n".join(tail) + b"\n")


def get(url: str, timeout: float = 10.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - our own server
        return response.read()
