"""Shelf's cache-aside layer: framework-free, so jobs, scripts and tests use it without Flask.

Written by hand rather than on Flask-Caching's backends, which have no stampede lock, no
stale-while-revalidate, no lease-checked writes, and pickle values; the app instead puts
Flask-Caching's decorators on top of this layer (``api.flask_cache``). Nothing here imports
Flask or the ``api`` package.

Vocabulary (dogpile.cache's): a **region** (``region.Region``) fronts a **backend**
(``backends.redis.RedisBackend``, optionally fronted by ``backends.near.NearCache``, or
``backends.null.NullBackend`` for caching off) and
serves ``get_or_create(key, creator)``; a **creator** computes a ``Payload`` (status,
body, etag) from the database; a miss is ``api.NO_VALUE``, never a cached ``None``. Keys
come only from ``keys.KeyBuilder``; values are ``entry.Entry`` in a versioned binary format.

Guarantees:

* A fresh hit is one Redis command, or none from a near cache (``backends.near``), which
  Redis's key tracking keeps exactly as fresh as Redis. Entries carry a soft expiry (then STALE, refreshed by
  one caller while the rest are served at once; XFetch refreshes hot keys early) and a
  hard TTL (Redis deletes them). TTLs are jittered.
* Single flight across processes: one lease holder computes a missing key; the others wait
  up to ``wait_budget_ms`` for its fill, then compute without storing.
* No stale sets: a fill is stored only while its lease and scope generation are unchanged;
  ``invalidate`` (entry + lease, or a scope's generation) voids every fill in flight.
* 404s are cached for ``negative_ttl``, at most ``negative_cap`` new ones per window.
* Redis failures never fail a read (state BYPASS, a metric, a rate-limited warning); a
  circuit breaker stops calling Redis during an outage and closes itself. ``invalidate``
  raises ``api.CacheUnavailable`` so the caller can keep the invalidation in an outbox
  and replay it.
"""
