"""Test helpers for the cache layer: a steppable clock, counting creators, and fault injectors.

Fakes exist here only to inject faults (a port nobody listens on, a proxy that delays
every Redis reply); every other test talks to the real Redis.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Sequence

import redis
from prometheus_client import CollectorRegistry

from cache.api import CacheUnavailable
from cache.entry import Payload


class FakeClock:
    """Wall clock for entries and the breaker, moved only by ``advance``."""

    def __init__(self, now: float = 1_700_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


ETAG = '"v1"'
"""The entity tag of every test payload: the cache stores the creator's tag and never derives one."""


def payload(body: bytes, status: int = 200) -> Payload:
    return Payload(status, body, ETAG)


class CountingCreator:
    """A creator that counts its calls, optionally sleeps, and can be held at a gate."""

    def __init__(self, body: bytes = b"body", status: int = 200, delay: float = 0.0):
        self.body, self.status, self.delay = body, status, delay
        self.calls = 0
        self.entered = threading.Event()
        self.gate: threading.Event | None = None
        self._lock = threading.Lock()

    def __call__(self) -> Payload:
        with self._lock:
            self.calls += 1
            body = self.body  # read the "database" before waiting, like a real query would
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(5), "test never opened the gate"
        time.sleep(self.delay)
        return payload(body, self.status)


def failing(exc: Exception) -> Callable[[], Payload]:
    def creator() -> Payload:
        raise exc

    return creator


def sample(registry: CollectorRegistry, name: str, resource: str | None = None) -> float:
    labels = {} if resource is None else {"resource": resource}
    suffix = "" if name == "breaker_state" else "_total"
    return registry.get_sample_value(f"shelf_cache_{name}{suffix}", labels) or 0.0


def commands_sent(
    client: redis.Redis, monitor_url: str, action: Callable[[], object], also: Sequence[redis.Redis] = ()
) -> list[str]:
    """The commands the Redis server received from ``client`` (and the clients ``also`` names) while
    ``action`` ran (via MONITOR). Each client is watched on the connection its pool hands out next."""
    marker_from = client.client_info()["addr"]
    addresses = {marker_from, *(c.client_info()["addr"] for c in also)}
    watcher = redis.Redis.from_url(monitor_url)
    try:
        with watcher.monitor() as monitor:
            action()
            client.echo("end-of-count")
            return _commands_until_marker(monitor, addresses, marker_from)
    finally:
        watcher.close()


def _commands_until_marker(monitor: redis.client.Monitor, addresses: set[str], marker_from: str) -> list[str]:
    seen = []
    for command in monitor.listen():
        address = f"{command['client_address']}:{command['client_port']}"
        if address not in addresses:
            continue
        if command["command"] == "ECHO end-of-count" and address == marker_from:
            return seen
        seen.append(command["command"])
    raise AssertionError("monitor stream ended early")


def closed_port() -> int:
    """A local TCP port with nothing listening: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DelayingProxy:
    """A TCP proxy in front of Redis that holds every reply for ``delay`` seconds."""

    def __init__(self, upstream: tuple[str, int], delay: float):
        self.upstream, self.delay = upstream, delay
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone does not
        self.server.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(5)

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.server.accept()
                upstream = socket.create_connection(self.upstream)
                self._sockets += [client, upstream]
                self._pump(client, upstream, 0.0)
                self._pump(upstream, client, self.delay)

    def _pump(self, source: socket.socket, target: socket.socket, delay: float) -> None:
        def run() -> None:
            with contextlib.suppress(OSError):
                while data := source.recv(65536):
                    time.sleep(delay)
                    target.sendall(data)

        thread = threading.Thread(target=run, daemon=True)
        self._threads.append(thread)
        thread.start()


class SwitchableBackend:
    """Fault injection: forwards to ``live`` or ``dead`` (both real backends) and counts calls."""

    def __init__(self, live, dead):
        self.live, self.dead, self.down, self.calls = live, dead, True, 0

    def __getattr__(self, name: str):
        def call(*args, **kwargs):
            self.calls += 1
            return getattr(self.dead if self.down else self.live, name)(*args, **kwargs)

        return call


class FailingOn:
    """Fault injection: forwards to ``backend`` but fails the named operations."""

    def __init__(self, backend, *failing: str):
        self.backend, self.failing = backend, failing

    def __getattr__(self, name: str):
        if name in self.failing:
            return _unavailable
        return getattr(self.backend, name)


def _unavailable(*args, **kwargs):
    raise CacheUnavailable("injected failure")
