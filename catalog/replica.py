"""Cache fills from a PostgreSQL streaming replica, trusted only once it has replayed every invalidated write.

A fill that reads a replica which has not yet replayed a write would store the old row under a
fresh lease and serve it for a whole TTL: the invalidation ran, the lease and the generation check
pass, only the data is old. The answer is a watermark, a "remote marker" in the words of Facebook's
memcache paper (Nishtala et al., NSDI 2013), kept for the whole cache:

* **write side**: after a write commits and *before* its invalidation reaches Redis, the primary's
  WAL insert position (``pg_current_wal_insert_lsn()``, at or past the write's commit record even
  with ``synchronous_commit=off``) is raised into one Redis key, never lowered (a Lua max). The
  outbox's replays do the same before applying rows, so every invalidation that reaches Redis has
  its LSN there first. If either step fails the invalidation is not applied: the outbox keeps it.
* **fill side**: a fill starts after its lease is taken, so after any invalidation that could void
  it; it reads the watermark, then asks the replica ``pg_last_wal_replay_lsn() >= watermark`` in
  the session the fill's queries then run in. Under READ COMMITTED each later statement sees every
  commit replayed by then, so the fill reads every write whose invalidation it could have missed.
  Otherwise, or when the watermark or the replica cannot be read, the fill reads the primary.

One key for the whole cache rather than one per entry: list pages depend on dependency tags and
guards, not only on their own key, and a per-key marker would have to follow all of them. The cost
is that, under a steady stream of writes, fills trust the replica only when it is less than one
write behind; the replica then takes the fills of quiet periods and the primary the rest.

A replica that refuses a connection is skipped for ``DOWN_SECONDS`` so that a dead one costs one
connect timeout per few seconds, not one per fill. Writes, reads inside a write, and everything that
is not a cache fill read the primary as before. Without Redis there is no watermark, so with the
cache disabled or unreachable every read goes to the primary.
"""

from __future__ import annotations

import logging
import re
import time

import redis
from prometheus_client import Counter
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from cache.api import CacheUnavailable
from cache.breaker import Breaker, BreakerState

log = logging.getLogger("shelf.replica")

DOWN_SECONDS = 5.0
"""How long a replica that failed a check is left alone before the next fill tries it again."""

RAISE_WATERMARK = """
local current = redis.call('GET', KEYS[1])
if not current or ARGV[1] > current then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
"""
"""Watermarks are stored as 16 zero-padded hex digits, so string order is LSN order."""

REPLAYED = text("SELECT pg_last_wal_replay_lsn() >= CAST(:watermark AS pg_lsn)")
INSERT_POSITION = text("SELECT pg_current_wal_insert_lsn()::text")
STORED = re.compile(r"^[0-9A-F]{16}$")


def lsn_key(lsn: str) -> str:
    """``'16/B374D848'`` as ``'00000016B374D848'``: comparable as a string."""
    high, _, low = lsn.partition("/")
    return f"{int(high, 16):08X}{int(low, 16):08X}"


def lsn_text(key: str) -> str:
    """The inverse of :func:`lsn_key`, in PostgreSQL's ``pg_lsn`` form."""
    return f"{int(key[:8], 16):X}/{int(key[8:], 16):X}"


class ReplicaReads:
    """Routes cache fills to the replica when its replay position covers the watermark."""

    def __init__(
        self,
        primary: Engine,
        replica: Engine,
        client: redis.Redis,
        key: str,
        registry,
        breaker: Breaker | None = None,
        clock=time.monotonic,
    ):
        self.primary, self.replica, self.client, self.key = primary, replica, client, key
        self.breaker = breaker  # the cache's: while it is open, no Redis read for the watermark either
        self.sessions = sessionmaker(replica, expire_on_commit=False)
        self.checked = True  # False only in the test that shows what the check prevents
        self._raise = client.register_script(RAISE_WATERMARK)
        self._clock, self._down_until = clock, 0.0
        self.fills = Counter(
            "shelf_replica_fills", "Cache fills by the server they read", ["source"], registry=registry
        )

    # --- the write side -----------------------------------------------------------------------

    def record_writes(self) -> None:
        """Raise the watermark to the primary's WAL insert position. Raises ``CacheUnavailable`` when
        it cannot, so the caller keeps the invalidation it was about to apply."""
        try:
            with self.primary.connect() as conn:
                position = conn.scalar(INSERT_POSITION)
            self._raise(keys=[self.key], args=[lsn_key(position)])
        except (SQLAlchemyError, redis.RedisError) as exc:
            raise CacheUnavailable(f"replica watermark not recorded: {exc}") from exc

    # --- the fill side ------------------------------------------------------------------------

    def fill_session(self) -> Session | None:
        """A replica session that has replayed every invalidated write, or None: read the primary."""
        if self._clock() < self._down_until:
            return self._primary("down")
        watermark = self._watermark()
        if watermark is None:
            return self._primary("no-watermark")
        session = self.sessions()
        try:
            caught_up = not self.checked or session.scalar(REPLAYED, {"watermark": lsn_text(watermark)})
        except SQLAlchemyError:
            session.close()
            self._down_until = self._clock() + DOWN_SECONDS
            log.warning("replica unreachable, fills read the primary for %.0f s", DOWN_SECONDS)
            return self._primary("down")
        if not caught_up:
            session.close()
            return self._primary("behind")
        self.fills.labels("replica").inc()
        return session

    def _watermark(self) -> str | None:
        if self.breaker is not None and self.breaker.state is not BreakerState.CLOSED:
            return None
        try:
            value = self.client.get(self.key)
            if value is None:  # lost with Redis (or never set): start from where the primary is now
                self.record_writes()
                value = self.client.get(self.key)
        except (redis.RedisError, CacheUnavailable):
            return None
        value = None if value is None else value.decode("ascii", "replace")
        return value if value is not None and STORED.match(value) else None

    def _primary(self, reason: str) -> None:
        self.fills.labels(f"primary-{reason}").inc()
        return None
