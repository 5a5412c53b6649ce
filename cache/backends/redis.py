"""The Redis backend: tight timeouts, no retries, and Lua for every check-then-write.

Written by hand instead of going through Flask-Caching's RedisCache, which pickles values
and offers no lease-checked write. The fill is a Lua script that stores only while the
caller's lease token and the scope generation are unchanged, so an invalidation that lands
during a slow computation can never be overwritten by the stale result. Scripts are
registered once and run by EVALSHA; pipelines send EVALSHA as a raw command (redis-py would add a
SCRIPT EXISTS round trip, and its cluster pipeline refuses ``evalsha()``) and load the script only
if Redis answers NOSCRIPT. Every ``redis.RedisError`` (and a cluster client's topology error) is
reported as ``CacheUnavailable``; redis-py's retries are disabled because a retried timeout
doubles the latency the timeout exists to bound.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

import redis

from ..api import NO_VALUE, CacheUnavailable, Fill, Lookup, NoValue
from ..config import REDIS_TIMEOUT_MS
from ..keys import CacheKey

# KEYS: entry, lease[, generation or guard], tag sets...
# ARGV: token, value, ttl ms, expected generation or guard, 1 if KEYS[3] is one (else 0), tag ttl ms
# Each tag set is swept a little on every fill (two members sampled, dropped if their entry expired):
# a set only a category write drops would otherwise keep every page that ever expired.
FILL_SCRIPT = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
local checked = tonumber(ARGV[5])
if checked == 1 and (redis.call('GET', KEYS[3]) or '0') ~= ARGV[4] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
for i = 3 + checked, #KEYS do
    for _, member in ipairs(redis.call('SRANDMEMBER', KEYS[i], 2)) do
        if redis.call('EXISTS', member) == 0 then redis.call('SREM', KEYS[i], member) end
    end
    redis.call('SADD', KEYS[i], KEYS[1])
    redis.call('PEXPIRE', KEYS[i], ARGV[6])
end
return 1
"""

# KEYS: a dependency-tag set. Deletes every entry registered in it, then the set.
DROP_TAG_SCRIPT = """
local members = redis.call('SMEMBERS', KEYS[1])
for i = 1, #members, 500 do
    redis.call('DEL', unpack(members, i, math.min(i + 499, #members)))
end
redis.call('DEL', KEYS[1])
return #members
"""

# KEYS: entry, lease[, generation or guard]  ARGV: token, ttl ms. Nil if the lease is taken, else
# {generation or guard, entry?}: re-reading under the lease catches a fill that landed since our GET.
ACQUIRE_SCRIPT = """
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
local generation = KEYS[3] and redis.call('GET', KEYS[3]) or '0'
return {generation, redis.call('GET', KEYS[1])}
"""

# KEYS: lease  ARGV: token
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

PURGE_BATCH = 500

STORE_ERRORS = (redis.RedisError, redis.exceptions.RedisClusterException, OSError)
"""What a call to Redis may raise when the store fails; a cluster client's topology errors
(no reachable node, slots not covered) are not ``RedisError``s."""


class RedisBackend:
    cluster = False
    """Whether the store is a Redis Cluster (``backends.cluster``)."""

    def __init__(self, client: redis.Redis):
        self.client = client
        self._acquire = client.register_script(ACQUIRE_SCRIPT)
        self._fill = client.register_script(FILL_SCRIPT)
        self._release = client.register_script(RELEASE_SCRIPT)
        self._drop_tag = client.register_script(DROP_TAG_SCRIPT)

    @classmethod
    def from_url(cls, url: str, timeout_ms: int = REDIS_TIMEOUT_MS) -> RedisBackend:
        """A backend with its own pool, ``timeout_ms`` socket timeouts and no client-side retries."""
        from .cluster import client_from_url  # the one client factory; cluster.py builds on this module

        return cls(client_from_url(url, timeout_ms / 1000, retries=False))

    def get(self, key: CacheKey) -> Lookup:
        with self._errors():
            if key.generation is None:
                return lookup_from(key, self.client.get(key.entry))
            return lookup_from(key, self.client.mget(key.entry, key.generation))

    def get_many(self, keys: Sequence[CacheKey]) -> list[Lookup]:
        if not keys:
            return []
        with self._errors():
            replies = self.client.mget([key.entry for key in keys])
        return [Lookup(_raw(reply)) for reply in replies]

    def acquire(self, key: CacheKey, token: str, ttl_ms: int) -> Lookup | None:
        with self._errors():
            reply = self._acquire(keys=_keys(key), args=[token, ttl_ms])
        if reply is None:
            return None
        checked, raw = (reply + [None])[:2]  # Lua drops a trailing nil from the table
        if key.guard is not None:
            return Lookup(_raw(raw), guard=int(checked))
        return Lookup(_raw(raw), int(checked))

    def acquire_many(self, keys: Sequence[CacheKey], token: str, ttl_ms: int) -> list[int | None]:
        with self._errors():
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.set(key.lease, token, nx=True, px=ttl_ms)
                if _checked(key):
                    pipe.get(_checked(key))
            replies = iter(pipe.execute())
        won = [(next(replies), next(replies) if _checked(key) else None) for key in keys]
        return [int(checked or 0) if taken else None for taken, checked in won]

    def fill(self, fills: Sequence[Fill]) -> list[bool]:
        with self._errors():
            if len(fills) == 1:
                return [bool(self._fill(*_fill_args(fills[0])))]
            return [bool(reply) for reply in self._fill_pipelined(fills)]

    def release(self, key: CacheKey, token: str) -> None:
        with self._errors():
            self._release(keys=[key.lease], args=[token])

    def invalidate(
        self,
        keys: Iterable[CacheKey],
        generation_keys: Iterable[str] = (),
        ttl_ms: int = 0,
        tags: Iterable[str] = (),
    ) -> None:
        commands = [("DEL", key.entry, key.lease) for key in keys]
        for generation_key in generation_keys:
            commands += [("INCRBY", generation_key, 1), ("PEXPIRE", generation_key, ttl_ms)]
        tags = list(tags)
        with self._errors():
            self._run_scripted(commands, tags)
            self._barrier()

    def count(self, counter_key: str, ttl_ms: int) -> int:
        with self._errors():
            pipe = self.client.pipeline(transaction=False)
            value, _ = pipe.incr(counter_key).pexpire(counter_key, ttl_ms).execute()
        return int(value)

    def purge(self, match: str, select: Callable[[str], bool]) -> int:
        deleted = 0
        with self._errors():
            for batch in _batches(self.client.scan_iter(match=match, count=PURGE_BATCH), select):
                pipe = self.client.pipeline(transaction=False)
                for key in batch:
                    pipe.unlink(key)  # one key per command: the batch spans cluster slots
                deleted += sum(pipe.execute())
        return deleted

    def on_connect(self, hook: Callable[[redis.connection.AbstractConnection], None]) -> None:
        """Run ``hook`` on every new connection, in place of redis-py's own handshake (which the hook
        must call: ``connection.on_connect()``) and before the connection serves a command."""
        self.client.connection_pool.connection_kwargs["redis_connect_func"] = hook

    def close(self) -> None:
        self.client.close()
        self.client.connection_pool.disconnect()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Report a Redis error as ``CacheUnavailable``, after ``_failed`` has run."""
        try:
            with _unavailable():
                yield
        except CacheUnavailable:
            self._failed()
            raise

    def _failed(self) -> None:
        """After a failed call: nothing to do here, redis-py drops the connection that failed."""
        return None

    def _barrier(self) -> None:
        # Redis reads this PING only after writing out every reply and tracking push of the loop
        # that ran our write, so once it answers, every near cache's listener has the invalidation
        # in its socket (see ``backends.near``). One round trip per write (its deletes and bumps
        # together); reads never pay it.
        self.client.ping()

    def _fill_pipelined(self, fills: Sequence[Fill]) -> list[object]:
        try:
            return self._evalsha_fills(fills)
        except redis.exceptions.NoScriptError:
            # Redis restarted or SCRIPT FLUSH ran: load the script and replay the pipeline once.
            self._fill.sha = self.client.script_load(FILL_SCRIPT)
            return self._evalsha_fills(fills)

    def _run_scripted(self, commands: list[tuple], tags: list[str]) -> list[object]:
        """One pipeline: ``commands``, then a DROP_TAG script call per tag. On NOSCRIPT the script is
        loaded and the whole pipeline runs again (deletes and increments replay harmlessly)."""
        try:
            return self._pipeline(commands, tags)
        except redis.exceptions.NoScriptError:
            self._drop_tag.sha = self.client.script_load(DROP_TAG_SCRIPT)
            return self._pipeline(commands, tags)

    def _pipeline(self, commands: list[tuple], tags: list[str]) -> list[object]:
        pipe = self.client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        for tag in tags:
            pipe.execute_command("EVALSHA", self._drop_tag.sha, 1, tag)
        return pipe.execute()

    def _evalsha_fills(self, fills: Sequence[Fill]) -> list[object]:
        pipe = self.client.pipeline(transaction=False)
        for fill in fills:
            keys, args = _fill_args(fill)
            pipe.execute_command("EVALSHA", self._fill.sha, len(keys), *keys, *args)
        return pipe.execute()


@contextmanager
def _unavailable() -> Iterator[None]:
    try:
        yield
    except STORE_ERRORS as exc:
        raise CacheUnavailable(f"{type(exc).__name__}: {exc}") from exc


def lookup_from(key: CacheKey, reply: object) -> Lookup:
    """The ``Lookup`` in a GET reply (unscoped key) or an MGET entry + generation reply (scoped)."""
    if key.generation is None:
        return Lookup(_raw(reply))
    raw, generation = reply
    return Lookup(_raw(raw), int(generation or 0))


def _raw(value: bytes | None) -> bytes | NoValue:
    return NO_VALUE if value is None else value


def _checked(key: CacheKey) -> str | None:
    """The counter a fill of ``key`` is checked against: its scope generation, or its guard."""
    return key.generation or key.guard


def _keys(key: CacheKey) -> list[str]:
    checked = _checked(key)
    return [key.entry, key.lease] + ([checked] if checked else [])


def _fill_args(fill: Fill) -> tuple[list[str], list[object]]:
    keys = _keys(fill.key)
    checked = 1 if len(keys) == 3 else 0
    args = [fill.token, fill.value, fill.ttl_ms, str(fill.generation), checked, fill.tag_ttl_ms]
    return keys + list(fill.tags), args


def _batches(keys: Iterable[bytes], select: Callable[[str], bool]) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for key in keys:
        if select(key.decode()):
            batch.append(key)
        if len(batch) >= PURGE_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
