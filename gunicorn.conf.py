"""Gunicorn settings for Shelf: ``gunicorn -c gunicorn.conf.py 'api:create_app()'`` (make run, compose).

Threaded workers (gthread) with HTTP keep-alive. Where to listen, how many processes and threads and
the log level come from Shelf's one ``Settings`` (``SHELF_HOST``, ``SHELF_PORT``,
``SHELF_WEB_WORKERS``, ``SHELF_WEB_THREADS``, ``SHELF_LOG_LEVEL``), parsed and checked as the app
parses them; the defaults suit a 2-core machine: 2 processes x 4 threads. The rest are constants.
"""

import os
import shutil
import socket
import tempfile

# Metrics of every worker process: prometheus_client writes each process's values to files in this
# folder (set before any worker imports it) and /metrics adds them up. A fresh folder per server.
_metrics_dir_owned = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _metrics_dir_owned:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="shelf-metrics-")


def _read_settings():
    """Shelf's Settings, imported only now: importing Shelf may load prometheus_client, which reads
    PROMETHEUS_MULTIPROC_DIR once, when it is first imported."""
    from catalog.config import Settings

    return Settings.from_env()


_settings = _read_settings()

bind = f"{_settings.host}:{_settings.port}"
worker_class = "gthread"
workers = _settings.web_workers
threads = _settings.web_threads
keepalive = 5  # seconds an idle keep-alive connection stays open: longer than a client's think time
timeout = 30  # a worker silent this long is restarted
graceful_timeout = 20  # what SIGTERM gives requests in flight (scripts/run.sh waits longer)

# Each worker listens on its own socket (SO_REUSEPORT) and the kernel spreads new connections over
# them. With one shared socket, whichever worker wakes first accepts, and long-lived keep-alive
# connections (a load balancer's pool, a load generator's users) stay where they landed: nearly all
# can end up on one worker, whose single core (the GIL) then serves them while the others idle.
reuse_port = hasattr(socket, "SO_REUSEPORT")

# The longest request line gunicorn reads (its maximum). The app's own bound on the path and query
# string is lower (api.guards.request_guards.MAX_TARGET_BYTES), so it answers over-long ones itself, with its
# headers and log line; gunicorn answers only what is longer still, in problem+json as well.
limit_request_line = 8190

loglevel = _settings.log_level.lower()
# The app writes one JSON line per request itself; gunicorn's access log would say it twice.
accesslog = None
errorlog = "-"

# Gunicorn's control socket defaults to one shared path in $HOME; two servers on one machine (or a
# read-only home in a container) would clash over it. Nothing here uses it.
control_socket_disable = True

# Heartbeat files on tmpfs where there is one (Docker's /tmp may be an overlay on disk).
if os.path.isdir("/dev/shm"):  # noqa: S108 - gunicorn's own advice for containers
    worker_tmp_dir = "/dev/shm"  # noqa: S108


def _shared_port(server) -> tuple[str, int] | None:
    """(host, port) when each worker opens its own socket on it (``reuse_port`` on a TCP address)."""
    if not server.cfg.reuse_port or not isinstance(server.cfg.address[0], tuple):
        return None  # a unix socket path: one socket, the master's
    return server.cfg.address[0]


def _drop_blank_listening_line(record) -> bool:
    """False for gunicorn's "Listening at: " line with no address (a master without sockets)."""
    return not (record.msg.startswith("Listening at:") and record.args and record.args[0] == "")


def on_starting(server):
    """Refuse a port that is taken, as a plain bind would: with ``reuse_port`` a second server started
    on the same port by the same user would otherwise share it silently. The master then has no
    socket and gunicorn would log a blank "Listening at:" line; ``when_ready`` logs the real one."""
    if (address := _shared_port(server)) is None:
        return  # a unix socket path is refused by bind as it is
    server.log.error_log.addFilter(_drop_blank_listening_line)
    host, port = address
    family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn's own sockets
        try:
            probe.bind(sockaddr)
        except OSError as exc:
            raise SystemExit(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def post_fork(server, worker):
    """gunicorn's own error pages (414, 431, 400 before the app runs) in problem+json."""
    from api.server_errors import install

    install()


def worker_exit(server, worker):
    """A stopping worker sends the view counts it still holds (they rank the next warm on start)."""
    views = getattr(worker.wsgi, "extensions", {}).get("shelf.views")
    if views is not None:
        views.close()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _metrics_dir_owned:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


def when_ready(server):
    """Say where Shelf listens, and queue a warm of the most read list pages and products once per
    start, so a fresh deploy is not cold (/readyz says "warming" until it has done enough)."""
    from api.background import warm_on_start

    if (address := _shared_port(server)) is not None:  # gunicorn's own line is dropped then
        host, port = address
        server.log.info("Listening at: http://%s:%s, a socket per worker (SO_REUSEPORT)", host, port)
    try:
        warm_on_start(_settings)
    except Exception as exc:  # noqa: BLE001 - a cold start is slower, not broken
        server.log.warning("warm on start not queued: %s", exc)
