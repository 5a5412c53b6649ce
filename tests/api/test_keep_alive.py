"""A response sent before its request's body is read keeps the connection usable, under gunicorn.

A keep-alive client (http.client, which sends the next request on the same socket whenever the
response allows it) sends a request Shelf answers without reading the body, then its next one.
"""

from __future__ import annotations

import http.client
import json
import secrets
import socket
from urllib.parse import urlsplit

import pytest
import requests

from catalog.config import Settings
from tests.conftest import TEST_TOKEN
from tests.test_gunicorn import free_port, start, wait_until_serving

pytestmark = pytest.mark.system

SPENDER_TOKEN = "spender-" + secrets.token_hex(8)
WRITE_BUDGET = 20
MAX_BODY_BYTES = Settings().max_body_bytes

UNDER_LIMIT = json.dumps({"name": "x" * 200_000}).encode()  # over gunicorn's own 64 KiB drain
OVER_LIMIT = json.dumps({"name": "x" * (3 * MAX_BODY_BYTES)}).encode()
JSON = {"Content-Type": "application/json"}
TOKEN = {"Authorization": f"Bearer {TEST_TOKEN}"}
SPENDER = {"Authorization": f"Bearer {SPENDER_TOKEN}"}


@pytest.fixture(scope="module")
def server(settings):
    port = free_port()
    process = start(
        settings,
        port,
        SHELF_API_TOKENS=f"tests:{TEST_TOKEN},spender:{SPENDER_TOKEN}",
        SHELF_RATE_LIMIT_WRITES=f"{WRITE_BUDGET}/minute",
        SHELF_KEY_PREFIX="test-keep-alive-" + secrets.token_hex(4),
    )
    yield wait_until_serving(process, port)
    process.terminate()
    process.communicate(timeout=15)


def spend_write_budget(base: str) -> None:
    """Small writes of the spender token until it is over budget."""
    with requests.Session() as session:
        for _ in range(WRITE_BUDGET + 1):
            response = session.post(
                base + "/v1/products", data=b"{}", headers={**SPENDER, **JSON}, timeout=10
            )
            if response.status_code == 429:
                return
    pytest.fail(f"still not over budget: {response.status_code}")


def answer_then_next(base: str, headers: dict, body) -> tuple[int, str, int, bool]:
    """POST ``body`` to /v1/products, then GET /v1/categories through the same HTTPConnection: the
    first status and Connection header, the second status, and whether it went on the same socket."""
    conn = http.client.HTTPConnection(*urlsplit(base).netloc.split(":"), timeout=10)
    try:
        try:
            chunked = not isinstance(body, bytes)
            conn.request("POST", "/v1/products", body=body, headers=headers, encode_chunked=chunked)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered and closed before the whole body was sent; the answer is readable (as urllib3)
        first = conn.getresponse()
        first.read()
        kept = conn.sock  # http.client drops its socket when a response says Connection: close
        conn.request("GET", "/v1/categories")
        second = conn.getresponse()
        second.read()
        reused = kept is not None and conn.sock is kept
        return first.status, first.getheader("Connection"), second.status, reused
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("headers", "body", "status", "connection"),
    [
        pytest.param({**TOKEN, **JSON}, OVER_LIMIT, 413, "close", id="413-over-the-limit"),
        pytest.param({**TOKEN, "Content-Type": "text/plain"}, UNDER_LIMIT, 415, "keep-alive", id="415"),
        pytest.param(JSON, UNDER_LIMIT, 401, "keep-alive", id="401-write-without-token"),
        pytest.param({**SPENDER, **JSON}, UNDER_LIMIT, 429, "keep-alive", id="429-write-over-budget"),
        pytest.param({**TOKEN, **JSON}, UNDER_LIMIT, 422, "keep-alive", id="422-body-read"),
    ],
)
def test_the_next_request_on_the_connection_is_answered(server, headers, body, status, connection):
    for _ in range(3):
        if status == 429:
            spend_write_budget(server)
        # A body up to max_body_bytes is read off the connection, which then takes the next
        # request; a bigger one closes it (saying so), and the client opens a new one.
        reused = connection == "keep-alive"
        assert answer_then_next(server, headers, body) == (status, connection, 200, reused)


def test_a_chunked_body_running_past_the_limit_closes_the_connection(server):
    chunks = (OVER_LIMIT[i : i + 65536] for i in range(0, len(OVER_LIMIT), 65536))
    headers = {**TOKEN, "Content-Type": "text/plain"}
    assert answer_then_next(server, headers, chunks) == (415, "close", 200, False)


def test_a_chunked_json_body_over_the_limit_is_413_and_closes_the_connection(server):
    chunks = (OVER_LIMIT[i : i + 65536] for i in range(0, len(OVER_LIMIT), 65536))
    assert answer_then_next(server, {**TOKEN, **JSON}, chunks) == (413, "close", 200, False)


def test_a_client_that_stops_sending_its_body_is_answered_and_closed(server):
    """The body is read for a bounded time only: a stalled client does not hold a thread."""
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            b"POST /v1/products HTTP/1.1\r\nHost: shelf\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100000\r\n\r\n{"name": '
        )
        response = http.client.HTTPResponse(sock)
        response.begin()
        response.read()
        assert (response.status, response.getheader("Connection")) == (401, "close")
        assert sock.recv(1) == b""  # closed by the server
