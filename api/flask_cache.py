"""A Flask-Caching backend over Shelf's cache: ``@cache.cached()`` and ``@cache.memoize()`` with the
protections every Shelf read has.

Flask-Caching's decorators speak get-then-set: ``get(key)``, and on a miss the view runs and
``set(key, value)`` stores what it returned. ``ShelfCache`` maps that onto ``Region.claim`` and
``Region.complete``: a ``get`` that misses takes the key's lease and keeps it (per thread) for the
``set`` that follows, so one caller computes while the others wait for its fill (single flight); an
entry past its soft expiry is served stale while the lease holder refreshes it; the fill is
lease-checked; the circuit breaker and fail-open come with the Region (a store that is down is a
miss, and the value is computed and not stored). The Region is the app's, so the near cache in
front of Redis serves hot entries without a round trip.

Nothing is pickled (unpickling bytes read back from Redis runs code). Values are stored as JSON
with a type tag: JSON values (a tuple comes back as a list), ``bytes``, and a Flask ``Response``
(status, headers, body); anything else is not cached (``set`` returns False and logs it). What is
read back is checked against that shape; anything else is a miss.

A Flask-Caching ``timeout`` is the entry's soft expiry; it is then served stale for as long again
(``STALE_FACTOR``) while one caller refreshes it. ``timeout=0`` (Flask-Caching's "never") and no
timeout take the ``flask_cache`` resource's TTLs (``SHELF_CACHE_TTLS``).
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from typing import Any, NamedTuple

import orjson
from flask import Flask, Response
from flask_caching import Cache
from flask_caching.backends.base import BaseCache

from cache.api import CacheUnavailable
from cache.config import ResourceTTL
from cache.entry import Payload
from cache.keys import CacheKey
from cache.region import Region
from catalog.representations import etag_of
from catalog.resources import FLASK_CACHE

logger = logging.getLogger("shelf.flask_cache")

cache = Cache()
"""The app's Flask-Caching extension (bound by ``init_app``): ``@cache.cached()``, ``@cache.memoize()``."""

RESOURCE = FLASK_CACHE.name
STALE_FACTOR = 2.0
"""Hard expiry as a multiple of the decorator's ``timeout`` (its soft expiry)."""


class Unstorable(TypeError):
    """A value with no JSON form here: it is served but not cached."""


def encode_value(value: Any) -> bytes:
    if isinstance(value, Response):
        if value.is_streamed:
            raise Unstorable("a streamed response")
        body = base64.b64encode(value.get_data()).decode()
        headers = [[name, content] for name, content in value.headers.items()]
        return orjson.dumps({"t": "response", "status": value.status_code, "headers": headers, "body": body})
    if isinstance(value, bytes):
        return orjson.dumps({"t": "bytes", "v": base64.b64encode(value).decode()})
    try:
        return orjson.dumps({"t": "json", "v": value})
    except TypeError as exc:
        raise Unstorable(f"{type(value).__name__} has no JSON form") from exc


def decode_value(raw: bytes) -> tuple[bool, Any]:
    """(True, value) for a well-formed stored value, else (False, None)."""
    try:
        stored = orjson.loads(raw)
        kind = stored["t"]
        if kind == "json":
            return True, stored["v"]
        if kind == "bytes":
            return True, base64.b64decode(stored["v"], validate=True)
        if kind == "response" and isinstance(stored["status"], int):
            body = base64.b64decode(stored["body"], validate=True)
            headers = [(str(name), str(content)) for name, content in stored["headers"]]
            return True, Response(body, status=stored["status"], headers=headers)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        pass
    return False, None


class Held(NamedTuple):
    """A lease a ``get`` took on a miss, kept for the ``set`` that follows in the same thread."""

    key: CacheKey
    lease: Any
    since: float  # perf_counter at the miss: the time until the set is the compute time


class ShelfCache(BaseCache):
    """Flask-Caching's cache API over a Shelf ``Region`` (see the module docstring)."""

    def __init__(self, region: Region, default_timeout: int = 300):
        super().__init__(default_timeout=default_timeout)
        self.region = region
        self._leases = threading.local()

    @classmethod
    def factory(cls, app: Flask, config: dict, args: list, kwargs: dict) -> ShelfCache:
        return cls(app.extensions["shelf.region"], config.get("CACHE_DEFAULT_TIMEOUT", 300))

    def _pending(self) -> dict:
        if not hasattr(self._leases, "held"):
            self._leases.held = {}
        return self._leases.held

    def get(self, key: str) -> Any:
        cache_key = self.region.keys.flask_cache(key)
        claim = self.region.claim(cache_key)
        if claim.lease is not None:
            self._hold(key, Held(cache_key, claim.lease, time.perf_counter()))
            return None
        if claim.entry is None:
            return None
        found, value = decode_value(claim.entry.body)
        return value if found else None

    def has(self, key: str) -> bool:
        """Whether a usable entry is stored (no lease taken, no hit counted)."""
        try:
            return self.region.get_many([self.region.keys.flask_cache(key)])[0] is not None
        except CacheUnavailable:
            return False

    def set(self, key: str, value: Any, timeout: int | None = None) -> bool:
        cache_key = self.region.keys.flask_cache(key)
        held = self._pending().pop(key, None)
        lease = held.lease if held else self.region.lease(cache_key)  # a plain set overwrites
        if lease is None:
            return False  # another caller is filling it, or the store is down
        try:
            body = encode_value(value)
        except Unstorable as exc:
            logger.warning("not cached under %r: %s", key, exc)
            self.region.abandon(cache_key, lease)
            return False
        compute_ms = (time.perf_counter() - held.since) * 1000 if held else 0.0
        payload = Payload(200, body, etag_of(body))
        return self.region.complete(cache_key, lease, payload, self._ttl(timeout), compute_ms)

    def add(self, key: str, value: Any, timeout: int | None = None) -> bool:
        if self.get(key) is not None:
            return False
        return self.set(key, value, timeout)

    def delete(self, key: str) -> bool:
        try:
            self.region.invalidate([self.region.keys.flask_cache(key)])
        except CacheUnavailable:
            return False
        return True

    def clear(self) -> bool:
        try:
            self.region.purge(RESOURCE)
        except CacheUnavailable:
            return False
        return True

    def release_held(self) -> None:
        """Give back the leases this thread took on a miss whose ``set`` never came (the view raised)."""
        held = self._pending()
        for each in held.values():
            self.region.abandon(each.key, each.lease)
        held.clear()

    def _hold(self, key: str, held: Held) -> None:
        previous = self._pending().pop(key, None)
        if previous is not None:
            self.region.abandon(previous.key, previous.lease)
        self._pending()[key] = held

    def _ttl(self, timeout: int | None) -> ResourceTTL | None:
        timeout = self._normalize_timeout(timeout)
        if not timeout:
            return None
        return ResourceTTL(hard=timeout * STALE_FACTOR, soft=float(timeout))


def init_app(app: Flask) -> None:
    """Bind ``cache`` to this app's Region; leases a request took and never filled go back at its end."""
    cache.init_app(app, config={"CACHE_TYPE": f"{__name__}.ShelfCache", "CACHE_NO_NULL_WARNING": True})

    @app.teardown_request
    def release_held_leases(_exc: BaseException | None) -> None:
        cache.cache.release_held()
