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

The near cache (``backends.near``) needs one tracking listener per node and re-registration on
slot moves; it refuses a cluster instead (see ``NearCache``). No barrier PING follows a write
here: it exists only to let a near cache's listener see the invalidation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..api import Lookup
from ..config import REDIS_TIMEOUT_MS
from ..keys import CacheKey
from .redis import RedisBackend, _raw, _unavailable

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


def client_from_url(url: str, timeout_seconds: float, **options) -> redis.Redis | redis.RedisCluster:
    """A standalone client, or a cluster client for the ``redis+cluster://`` forms."""
    if is_cluster_url(url):
        return cluster_client(url, timeout_seconds, **options)
    return redis.Redis.from_url(
        url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds, **options
    )


def close_cluster_client(client: redis.RedisCluster) -> None:
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
    @classmethod
    def from_url(cls, url: str, timeout_ms: int = REDIS_TIMEOUT_MS) -> ClusterBackend:
        """No client-side retries, as on a single Redis; MOVED and ASK are still followed."""
        return cls(cluster_client(url, timeout_ms / 1000, retry=Retry(NoBackoff(), 0)))

    def get_many(self, keys: Sequence[CacheKey]) -> list[Lookup]:
        if not keys:
            return []
        with _unavailable():
            replies = self.client.mget_nonatomic([key.entry for key in keys])
        return [Lookup(_raw(reply)) for reply in replies]

    def on_connect(self, hook: Callable[[redis.connection.AbstractConnection], None]) -> None:
        # Nodes found later (a slot moved, a node replaced) are built from the manager's kwargs.
        self.client.nodes_manager.connection_kwargs["redis_connect_func"] = hook
        for node in self.client.get_nodes():
            if node.redis_connection is not None:
                node.redis_connection.connection_pool.connection_kwargs["redis_connect_func"] = hook

    def close(self) -> None:
        close_cluster_client(self.client)

    def _barrier(self) -> None:
        return None
