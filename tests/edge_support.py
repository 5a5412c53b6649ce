"""Shelf served over real HTTP in the test process, with a real Varnish edge in front of it.

Reads go over HTTP; writes go through the app's test client (directly to Shelf, as a writer
that bypasses the edge would): werkzeug's development server hands the app the raw socket as
``wsgi.input``, where ``api.keep_alive`` would wait for a body end that never comes.

``ShelfHttp`` is a threaded werkzeug server on a free loopback port whose app is attached after
it starts, so a Varnish can be pointed at the port before the app (which needs the Varnish's
URL to purge it) exists.
"""

from __future__ import annotations

import threading
import time

import orjson
import urllib3
from werkzeug.serving import make_server


class ShelfHttp:
    def __init__(self):
        self.app = None
        self.server = make_server("127.0.0.1", 0, self._dispatch, threaded=True)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _dispatch(self, environ, start_response):
        return self.app(environ, start_response)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


HTTP = urllib3.PoolManager(maxsize=32, retries=False, timeout=30)


def request(method: str, url: str, **kwargs) -> urllib3.BaseHTTPResponse:
    if "json" in kwargs:
        kwargs["body"] = orjson.dumps(kwargs.pop("json"))
        kwargs.setdefault("headers", {})["Content-Type"] = "application/json"
    return HTTP.request(method, url, **kwargs)


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
