"""/metrics under gunicorn adds up every worker process, not just the one that answers."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.factories import make_category, make_product

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(settings, redis_client):
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "SHELF_ENV": "test",
        "SHELF_PORT": str(port),
        "SHELF_WEB_WORKERS": "2",
        "SHELF_WEB_THREADS": "2",
        "SHELF_LOG_LEVEL": "WARNING",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    gunicorn = Path(sys.executable).parent / "gunicorn"
    process = subprocess.Popen(  # noqa: S603 - our own server, fixed arguments
        [str(gunicorn), "-c", "gunicorn.conf.py", "api:create_app()"], cwd=ROOT, env=env
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1)  # noqa: S310 - local test server
            break
        except OSError:
            time.sleep(0.2)
    yield base
    process.terminate()
    process.wait(15)


def test_metrics_add_up_all_workers(server, engine):
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
