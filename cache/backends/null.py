"""The null backend: caching off, with every request taking the full region code path.

Every read is a miss and every write is forgotten, but leases are always granted, so a
region over it calls each creator exactly once per request and never waits. Comparing it
with the Redis backend measures what the cache buys, not what a different code path costs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from ..api import NO_VALUE, Fill, Lookup
from ..keys import CacheKey


class NullBackend:
    def get(self, key: CacheKey) -> Lookup:
        return Lookup(NO_VALUE)

    def get_many(self, keys: Sequence[CacheKey]) -> list[Lookup]:
        return [Lookup(NO_VALUE) for _ in keys]

    def acquire(self, key: CacheKey, token: str, ttl_ms: int) -> Lookup | None:
        return Lookup(NO_VALUE)

    def acquire_many(self, keys: Sequence[CacheKey], token: str, ttl_ms: int) -> list[int | None]:
        return [0 for _ in keys]

    def fill(self, fills: Sequence[Fill]) -> list[bool]:
        # Accepted, then forgotten: a null store has nothing newer to protect.
        return [True for _ in fills]

    def release(self, key: CacheKey, token: str) -> None:
        return None

    def invalidate(
        self,
        keys: Iterable[CacheKey],
        generation_keys: Iterable[str] = (),
        ttl_ms: int = 0,
        tags: Iterable[str] = (),
    ) -> None:
        return None

    def count(self, counter_key: str, ttl_ms: int) -> int:
        return 0

    def purge(self, match: str, select: Callable[[str], bool]) -> int:
        return 0

    def close(self) -> None:
        return None
