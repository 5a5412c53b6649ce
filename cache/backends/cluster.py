"""The Redis backend on a Redis Cluster, and the ``redis+cluster://`` URL that selects it.

The cache runs on a cluster because every multi-key operation is already confined to one slot
by the key layout (``cache.keys``): one hash tag per resource instance (``{p:42}``) or per list
scope (``{l:all}``, ``{l:c:books}``) holds the entry, its lease, its generation counter or fill
guards, and every dependency-tag set its entries register in (``keys.tag_key`` puts a tag set
in the hash tag of the entry that names it). So:

* the FILL script (entry, lease, generation or guard, tag sets) and ACQUIRE touch one slot;
* DROP_TAG deletes members that were registered by fills in the tag set's own slot;
* a scoped hit's MGET of entry + generation is one slot, as on a single Redis;
* an invalidation is a pipeline of single-slot commands that redis-py's cluster pipeline sends
  per node in the order given; the one ordering the guarantee needs (a scope's guards are bumped
  before its tag sets are dropped) is between keys of one slot, hence of one node, so it holds;
* ``get_many`` (the entries a list page is assembled from, one product each) spans slots: it
  is split per slot (``mget_nonatomic``, one MGET per slot, pipelined per node). Each entry is
  valid on its own, so reading them at slightly different instants loses nothing.

A scope-wide hash tag concentrates one scope's pages on one node; scopes (all products, each
category) spread over the nodes. The alternative, a tag per page with tag sets split per slot,
would make a category write drop tag sets on every node and lose the guard-then-drop order.

Failures degrade as on a single Redis: the client is built on first use (``LazyClusterClient``),
topology errors count as store errors, and after any failure every node's idle connections are
closed (``ClusterBackend._failed``), so the next command opens a fresh one and the app's
``on_connect`` hook (the outbox replay) runs before it serves.

The near cache (``backends.near``) needs one tracking listener per node and re-registration on
slot moves; it refuses a cluster instead (see ``NearCache``). No barrier PING follows a write
here: it exists only to let a near cache's listener see the invalidation.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.retry import Retry

from ..api import Lookup
from ..config import REDIS_TIMEOUT_MS
from ..keys import CacheKey
from .redis import RedisBackend, _raw

SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
"""``REDIS_URL`` schemes that name a cluster (any one node; the rest are discovered)."""


def is_cluster_url(url: str) -> bool:
    return urlsplit(url).scheme in SCHEMES


def cluster_client(url: str, timeout_seconds: float, **options) -> redis.RedisCluster:
    """A cluster client for a ``redis+cluster://host:port`` URL. A cluster has only db 0."""
    parts = urlsplit(url)
    if parts.path.strip("/") not in ("", "0"):
        raise ValueError(f"a Redis Cluster has only db 0, not {parts.path!r} ({url})")
    plain = parts._replace(scheme=SCHEMES[parts.scheme], path="").geturl()
    return redis.RedisCluster.from_url(
        plain, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds, **options
    )


class LazyClusterClient:
    """A ``RedisCluster`` built on first use. redis-py's connects in its constructor (to learn the
    slot map), which would turn a cluster that is down when the app starts into a start-up failure
    instead of a cache that degrades and comes back; this proxy makes the first command pay for it,
    inside the backend's error handling. ``register_script`` needs no connection (the scripts'
    SHA1 is computed locally)."""

    def __init__(self, url: str, timeout_seconds: float, **options):
        self._url, self._timeout, self._options = url, timeout_seconds, options
        self._client: redis.RedisCluster | None = None
        self._lock = threading.Lock()

    @property
    def built(self) -> redis.RedisCluster | None:
        return self._client

    def connect(self) -> redis.RedisCluster:
        with self._lock:
            if self._client is None:
                self._client = cluster_client(self._url, self._timeout, **self._options)
            return self._client

    def set_option(self, name: str, value: object) -> None:
        """An option of every connection: of the client to come, and of the one built, if any."""
        self._options[name] = value

    def register_script(self, script: str) -> Script:
        return Script(self, script.encode())

    def __getattr__(self, name: str):
        return getattr(self.connect(), name)


def client_from_url(
    url: str, timeout_seconds: float, *, retries: bool = True, **options
) -> redis.Redis | LazyClusterClient:
    """Every Redis client Shelf opens is built here, from a URL and its role's options: a standalone
    client, or a cluster client (built on first use) for the ``redis+cluster://`` forms.
    ``timeout_seconds`` bounds connecting and each reply; ``retries=False`` turns redis-py's own
    retry off, for callers whose circuit breaker decides when to try again."""
    if not retries:
        options["retry"] = Retry(NoBackoff(), 0)
    if is_cluster_url(url):
        return LazyClusterClient(url, timeout_seconds, **options)
    return redis.Redis.from_url(
        url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds, **options
    )


def close_cluster_client(client: redis.RedisCluster | LazyClusterClient) -> None:
    """Close every node's connections: ``RedisCluster.close`` leaves the pools of clients it built
    from a URL open."""
    nodes = client.get_nodes()
    client.close()
    for node in nodes:
        if node.redis_connection is not None:
            node.redis_connection.connection_pool.disconnect()


def backend_from_url(url: str, timeout_ms: int = REDIS_TIMEOUT_MS) -> RedisBackend:
    """The backend ``url`` names: ``ClusterBackend`` for a cluster URL, else ``RedisBackend``."""
    if is_cluster_url(url):
        return ClusterBackend.from_url(url, timeout_ms)
    return RedisBackend.from_url(url, timeout_ms)


class ClusterBackend(RedisBackend):
    cluster = True

    @classmethod
    def from_url(cls, url: str, timeout_ms: int = REDIS_TIMEOUT_MS) -> ClusterBackend:
        """No client-side retries, as on a single Redis; MOVED and ASK are still followed."""
        return cls(client_from_url(url, timeout_ms / 1000, retries=False))

    def get_many(self, keys: Sequence[CacheKey]) -> list[Lookup]:
        if not keys:
            return []
        with self._errors():
            replies = self.client.mget_nonatomic([key.entry for key in keys])
        return [Lookup(_raw(reply)) for reply in replies]

    def on_connect(self, hook: Callable[[redis.connection.AbstractConnection], None]) -> None:
        # Nodes found later (a slot moved, a node replaced) are built from the manager's kwargs. The
        # pools of the nodes found so far already hold connections (discovering the slot map opened
        # them), and a connection keeps the hook it was made with across reconnects: reset drops them.
        self.client.set_option("redis_connect_func", hook)
        built = self.client.built
        if built is None:
            return
        built.nodes_manager.connection_kwargs["redis_connect_func"] = hook
        for node in built.get_nodes():
            if node.redis_connection is not None:
                pool = node.redis_connection.connection_pool
                pool.connection_kwargs["redis_connect_func"] = hook
                pool.reset()

    def close(self) -> None:
        if self.client.built is not None:
            close_cluster_client(self.client.built)

    def _failed(self) -> None:
        # redis-py's cluster pipeline hands a connection whose read timed out back to its pool
        # still connected, with the replies it did not read yet still to come; and every
        # connection left open would skip the ``on_connect`` hook (the outbox's replay before a
        # connection serves). So after any failure every node's idle connections are closed and
        # those in use are closed when they are handed back.
        built = self.client.built
        for node in built.get_nodes() if built is not None else ():
            if node.redis_connection is not None:
                pool = node.redis_connection.connection_pool
                with pool._lock:
                    pool.update_active_connections_for_reconnect()
                    pool.disconnect_free_connections()

    def _barrier(self) -> None:
        return None
