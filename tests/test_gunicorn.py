"""Shelf under gunicorn as the run command starts it: /metrics adds up every worker process, each
worker listens on its own socket, a port already taken is refused, each worker's near cache hears
invalidations, the rate limiter's leases keep one budget across workers, SIGTERM lets requests in
flight finish, and a crashed worker is replaced. (Keep-alive and the body limits: test_keep_alive.)"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from catalog.popularity import POPULARITY_KEY
from tests.conftest import TEST_TOKEN
from tests.factories import make_category, make_product

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(
    settings, port: int, log_level: str = "WARNING", stderr=subprocess.PIPE, **shelf_env: str
) -> subprocess.Popen:
    """Start gunicorn over the test servers; ``shelf_env`` adds or overrides environment variables."""
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "SHELF_ENV": "test",
        "SHELF_PORT": str(port),
        "SHELF_WEB_WORKERS": "2",
        "SHELF_WEB_THREADS": "2",
        "SHELF_LOG_LEVEL": log_level,
        **shelf_env,
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    gunicorn = Path(sys.executable).parent / "gunicorn"
    return subprocess.Popen(  # noqa: S603 - our own server, fixed arguments
        [str(gunicorn), "-c", "gunicorn.conf.py", "api:create_app()"],
        cwd=ROOT,
        env=env,
        stderr=stderr,
        text=True,
    )


def listening_on(process: psutil.Process, port: int) -> bool:
    return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in process.net_connections())


def all_workers_listen(process: subprocess.Popen, port: int, workers: int = 2) -> bool:
    try:
        children = psutil.Process(process.pid).children()
        return len(children) == workers and all(listening_on(child, port) for child in children)
    except psutil.NoSuchProcess:  # a worker exiting or the master gone: not ready
        return False


def wait_until_serving(process: subprocess.Popen, port: int, workers: int = 2) -> str:
    """The server's base URL, once every worker listens (30 seconds at most)."""
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1)  # noqa: S310 - local test server
            break
        except OSError:
            time.sleep(0.2)
    # /healthz answers as soon as one worker is up; the other may still be booting on a busy machine.
    while time.monotonic() < deadline and not all_workers_listen(process, port, workers):
        time.sleep(0.1)
    return base


@pytest.fixture
def server(settings, redis_client):
    port = free_port()
    process = start(settings, port)
    yield wait_until_serving(process, port), process
    process.terminate()
    process.communicate(timeout=15)


def test_metrics_add_up_all_workers(server, engine):
    server, _ = server
    product = make_product(engine, make_category(engine))
    requests = 40
    for _ in range(requests):  # new connections each time: both workers answer some
        urllib.request.urlopen(f"{server}/v1/products/{product.id}", timeout=5)  # noqa: S310
    text = urllib.request.urlopen(server + "/metrics", timeout=5).read().decode()  # noqa: S310
    served = 0.0
    for event in ("hits", "misses", "stale", "bypass"):
        match = re.search(rf'shelf_cache_{event}_total\{{resource="product"\}} ([0-9.e+]+)', text)
        served += float(match.group(1)) if match else 0.0
    assert served == requests


def test_each_worker_listens_on_its_own_socket(server):
    base, process = server
    port = int(base.rsplit(":", 1)[1])
    master = psutil.Process(process.pid)
    workers = master.children()
    assert len(workers) == 2
    # The kernel spreads connections over the workers' sockets (SO_REUSEPORT); a socket shared by
    # all, the master's, would leave it to whichever worker accepts first.
    assert not listening_on(master, port)
    assert all(listening_on(worker, port) for worker in workers)


def test_a_second_server_on_a_taken_port_exits_instead_of_sharing_it(server, settings):
    base, _ = server
    port = int(base.rsplit(":", 1)[1])
    second = start(settings, port)
    _, stderr = second.communicate(timeout=30)
    assert second.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in stderr
    assert urllib.request.urlopen(base + "/healthz", timeout=5).status == 200  # noqa: S310


def test_it_says_where_it_listens(settings, redis_client, tmp_path):
    """With a socket per worker the master has none, and gunicorn's own "Listening at" line is blank."""
    port = free_port()
    log = tmp_path / "gunicorn.log"
    with open(log, "w") as out:
        process = start(settings, port, log_level="INFO", stderr=out)
    try:
        expected = f"Listening at: http://127.0.0.1:{port}, a socket per worker (SO_REUSEPORT)"
        deadline = time.monotonic() + 30
        while expected not in log.read_text() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
        assert expected in log.read_text(), log.read_text()
        listening = [line for line in log.read_text().splitlines() if "Listening at:" in line]
        assert listening == [line for line in listening if expected in line]  # no blank one before it
        wait_until_serving(process, port)  # a SIGTERM to workers still booting can outlast the wait below
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_an_over_long_request_target_is_the_apps_414_problem(server):
    base, _ = server
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{base}/v1/products?q=" + "a" * 8_100, timeout=5)  # noqa: S310
    assert caught.value.code == 414
    assert caught.value.headers["Content-Type"] == "application/problem+json"
    body = json.loads(caught.value.read())
    assert "over the 8000-byte limit" in body["detail"]
    assert body["request_id"]  # the app answered, with its request id and log line


def test_a_request_line_over_gunicorns_limit_is_a_414_problem_too(server):
    """gunicorn answers a request line over limit_request_line itself, before the app: problem+json."""
    base, _ = server
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{base}/v1/products?q=" + "a" * 9_000, timeout=5)  # noqa: S310
    assert caught.value.code == 414
    assert caught.value.headers["Content-Type"] == "application/problem+json"
    body = json.loads(caught.value.read())
    assert body["status"] == 414
    assert body["detail"].startswith("Request Line is too large")


# --- the properties the server must keep: each against gunicorn as `make run` starts it ---


def worker_pids(process: subprocess.Popen) -> set[int]:
    return {child.pid for child in psutil.Process(process.pid).children()}


def fresh_get(url: str, **headers: str):
    """A GET on a new connection (the kernel picks the worker): its status, JSON body and headers."""
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - local test server
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as error:
        return error.code, None, error.headers


@pytest.fixture
def writable(settings, redis_client):
    """gunicorn with a known write token; (base URL, process)."""
    port = free_port()
    process = start(settings, port, SHELF_API_TOKENS=f"tests:{TEST_TOKEN}")
    yield wait_until_serving(process, port), process
    process.terminate()
    process.communicate(timeout=30)


def test_every_workers_near_cache_drops_an_entry_another_worker_wrote(writable, engine):
    """Each worker's near cache listens for invalidations itself (started after the fork): once a
    write returns, no worker serves the old value from its memory."""
    base, _ = writable
    product = make_product(engine, make_category(engine), stock=5)
    url = f"{base}/v1/products/{product.id}"
    for _ in range(20):  # new connections: both workers read it and keep it in their near caches
        assert fresh_get(url)[1]["stock"] == 5
    patch = urllib.request.Request(  # noqa: S310 - local test server
        url,
        data=json.dumps({"stock": 1}).encode(),
        method="PATCH",
        headers={"Authorization": f"Bearer {TEST_TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(patch, timeout=10) as response:  # noqa: S310
        assert response.status == 200
    assert {fresh_get(url)[1]["stock"] for _ in range(20)} == {1}


def in_one_minute(run):
    """``run()``'s result, from a call that started and ended in one fixed minute window (3 tries)."""
    for _attempt in range(3):  # a busy machine may need more than one
        while time.time() % 60 > 30:
            time.sleep(0.5)
        window = time.time() // 60
        result = run()
        if time.time() // 60 == window:
            return result
        time.sleep(60 - time.time() % 60)  # the crossing spent part of this window: a fresh one
    pytest.fail("three tries each crossed a minute boundary")


def cpu_seconds(pids: set[int]) -> dict[int, float]:
    return {pid: sum(psutil.Process(pid).cpu_times()[:2]) for pid in pids}


def test_the_read_budget_holds_across_workers(settings, redis_client):
    """Each worker leases tokens of the one budget in Redis: all workers together never serve more
    than the budget, and refuse early by at most (workers - 1) x (lease - 1)."""
    budget, lease = 400, 4  # a lease is a hundredth of the budget
    port = free_port()
    process = start(settings, port, SHELF_RATE_LIMIT_READS=f"{budget}/minute")
    try:
        base = wait_until_serving(process, port)
        statuses = in_one_minute(lambda: [fresh_get(f"{base}/v1/categories")[0] for _ in range(budget + 20)])
        metrics = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()  # noqa: S310
    finally:
        process.terminate()
        process.communicate(timeout=30)
    # A Redis timeout makes the limiter fail open (by design), which says nothing about leases.
    assert not re.search(r"^shelf_rate_limit_storage_errors_total [1-9]", metrics, re.M), "Redis timed out"
    served = statuses.count(200)
    assert statuses.count(429) == len(statuses) - served
    assert budget - (2 - 1) * (lease - 1) <= served <= budget


def test_what_remains_never_rises_across_workers_and_stays_near_the_truth(settings, redis_client):
    """One client whose requests the kernel spreads over both workers: ``r`` in ``RateLimit`` only
    falls within the window, and is never above what the client has left of the budget, nor below
    it by more than the tokens the two workers may hold unspent (lease - 1 each)."""
    budget, lease, requests = 1200, 12, 300
    port = free_port()
    process = start(settings, port, SHELF_RATE_LIMIT_READS=f"{budget}/minute")
    try:
        base = wait_until_serving(process, port)
        workers = worker_pids(process)
        before = cpu_seconds(workers)
        headers = in_one_minute(lambda: [fresh_get(f"{base}/v1/categories")[2] for _ in range(requests)])
        used = {pid: seconds - before[pid] for pid, seconds in cpu_seconds(workers).items()}
    finally:
        process.terminate()
        process.communicate(timeout=30)
    assert min(used.values()) > 0.1 * sum(used.values()), f"one worker served nearly all: {used}"
    rate_limit = re.compile(r'^"reads";r=(\d+);t=\d+$')
    remaining = [int(rate_limit.match(h["RateLimit"]).group(1)) for h in headers]
    assert remaining == sorted(remaining, reverse=True), remaining
    below = [(budget - served) - r for served, r in enumerate(remaining, start=1)]
    assert all(0 <= gap <= 2 * (lease - 1) for gap in below), below


def test_sigterm_lets_the_request_in_flight_finish_and_leaves_nothing_running(writable):
    base, process = writable
    workers = worker_pids(process)
    host, port = base.removeprefix("http://").split(":")
    body = json.dumps({"name": "x"}).encode()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            b"POST /v1/products HTTP/1.1\r\nHost: shelf\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {TEST_TOKEN}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body[:4]
        )
        time.sleep(0.5)  # the request is in a worker, waiting for the rest of its body
        process.terminate()
        time.sleep(0.5)
        sock.sendall(body[4:])
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 422  # answered in full: the app validated the whole body
        response.read()
    assert process.wait(timeout=30) == 0
    assert not [pid for pid in workers if psutil.pid_exists(pid)]


def test_a_stopping_worker_sends_the_view_counts_it_holds(server, engine, redis_client):
    """Counts are flushed every 5 s; a worker stopped sooner sends them on its way out."""
    base, process = server
    product = make_product(engine, make_category(engine))
    assert fresh_get(f"{base}/v1/products/{product.id}")[0] == 200
    process.terminate()
    assert process.wait(timeout=30) == 0
    assert redis_client.zscore(POPULARITY_KEY, product.id) == 1


def test_a_crashed_worker_is_replaced(server):
    base, process = server
    port = int(base.rsplit(":", 1)[1])
    before = worker_pids(process)
    victim = sorted(before)[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = worker_pids(process)
        if victim not in now and len(now) == 2 and all_workers_listen(process, port):
            break
        time.sleep(0.2)
    assert victim not in worker_pids(process) and len(worker_pids(process)) == 2
    assert all(fresh_get(f"{base}/healthz")[0] == 200 for _ in range(10))
