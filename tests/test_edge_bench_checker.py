"""The edge bench's read-your-writes checker: its writes keep their schedule however slow a write is,
so arms whose writes wait for purges take as many writes as arms whose writes do not."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from loadtest.edge_bench import StaleChecker

pytestmark = pytest.mark.system  # seconds of real schedule each: the benchmark's machinery, not Shelf's

PATHS = [f"/v1/products/{n}" for n in range(1, 6)]


class SlowWrites(BaseHTTPRequestHandler):
    """PATCH stores the description after ``delay`` seconds; GET answers the stored one."""

    delay = 0.5
    stored: dict[str, str] = {}

    def do_PATCH(self):  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        time.sleep(self.delay)
        self.stored[self.path] = body["description"]
        self._answer(b"{}")

    def do_GET(self):  # noqa: N802
        self._answer(json.dumps({"description": self.stored.get(self.path, "")}).encode())

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def slow_origin():
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowWrites)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_writes_keep_their_rate_when_each_write_is_slow(slow_origin):
    checker = StaleChecker(slow_origin, slow_origin, PATHS, rate=10)
    checker.start()
    time.sleep(1.5)
    result = checker.stop()
    # One write at a time would manage 3 in 1.5 s; five paths in flight take 10 a second.
    assert result["writes"] >= 8
    assert result["write_ms_median"] >= 500
    assert result["stale_reads"] == 0 and result["checked_reads"] > 0


def test_reads_of_an_older_version_after_an_acknowledged_write_count_as_stale(slow_origin, monkeypatch):
    monkeypatch.setattr(SlowWrites, "delay", 2.0)  # the next write lands 2 s after the first's 2xx
    checker = StaleChecker(slow_origin, slow_origin, PATHS[:1], rate=5)
    checker.start()
    deadline = time.monotonic() + 10
    while not checker.writes and time.monotonic() < deadline:
        time.sleep(0.05)
    SlowWrites.stored[PATHS[0]] = "edge-bench-1"  # an old version, served after the write's 2xx
    time.sleep(0.3)
    result = checker.stop()
    assert result["writes"] >= 1
    assert result["stale_reads"] > 0
