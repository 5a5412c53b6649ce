"""The contract between ``Region`` and a storage backend, plus the values they exchange.

Named after dogpile.cache's ``api.py``: ``NO_VALUE`` marks a miss (so a miss is never
confused with a stored value), and a backend is a thin, policy-free adapter: it stores
opaque bytes under the keys it is given and enforces the lease and generation checks
atomically. All policy (TTLs, single flight, staleness, circuit breaking) lives in
``Region``, so a new backend only has to honour the method contracts below. A backend
reports every storage failure as ``CacheUnavailable`` and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from .entry import Entry
from .keys import CacheKey


class NoValue:
    """Type of ``NO_VALUE``; falsy, so ``if lookup.raw`` reads naturally."""

    def __repr__(self) -> str:
        return "<NO_VALUE>"

    def __bool__(self) -> bool:
        return False


NO_VALUE: Final = NoValue()


class CacheUnavailable(Exception):
    """The cache store could not be reached or refused the command; the caller must degrade."""


class CircuitOpen(CacheUnavailable):
    """Raised without touching the store because the circuit breaker is open."""


@dataclass(frozen=True)
class Lookup:
    """One read: the stored bytes (or ``NO_VALUE``) and the scope's current generation (0 if none).

    ``entry`` is ``raw`` already decoded, when a near cache kept it so: hits skip decoding."""

    raw: bytes | NoValue
    generation: int = 0
    entry: Entry | None = None
    guard: int = 0
    """The key's fill guard when the lease was taken (``CacheKey.guard``); 0 on plain reads."""


@dataclass(frozen=True)
class Fill:
    """A lease-checked write: store ``value`` only if ``token`` still holds the lease and the
    scope generation (or the key's guard) still equals ``generation``; then register the entry
    in the dependency-tag sets ``tags`` (full keys, in the entry's slot), kept ``tag_ttl_ms``."""

    key: CacheKey
    value: bytes
    ttl_ms: int
    token: str
    generation: int
    tags: tuple[str, ...] = ()
    tag_ttl_ms: int = 0


class Backend(Protocol):
    def get(self, key: CacheKey) -> Lookup:
        """Read the entry and, for scoped keys, the generation, in ONE round trip."""

    def get_many(self, keys: Sequence[CacheKey]) -> list[Lookup]:
        """Read several unscoped entries in ONE round trip (none for what a near cache holds)."""

    def acquire(self, key: CacheKey, token: str, ttl_ms: int) -> Lookup | None:
        """Take the key's lease (set-if-absent with expiry). None if someone else holds it; else
        a fresh read of entry and generation (or guard), taken atomically with the lease, in one
        round trip."""

    def acquire_many(self, keys: Sequence[CacheKey], token: str, ttl_ms: int) -> list[int | None]:
        """Take several leases in one round trip; per key the generation (or guard) if won, else
        None."""

    def fill(self, fills: Sequence[Fill]) -> list[bool]:
        """Apply lease-checked writes in one round trip and release their leases."""

    def release(self, key: CacheKey, token: str) -> None:
        """Give up the lease if ``token`` still holds it (compare-and-delete)."""

    def invalidate(
        self,
        keys: Iterable[CacheKey],
        generation_keys: Iterable[str] = (),
        ttl_ms: int = 0,
        tags: Iterable[str] = (),
    ) -> None:
        """Delete entries and their leases, so fills already in flight are rejected; increment
        the generation counters and guards (re-arming their idle expiry to ``ttl_ms``); then
        delete every entry registered in the dependency-tag sets ``tags``, and the sets. The
        increments come first, so a fill that missed the tag sets is refused by its guard. One
        write's invalidation, applied in one round trip plus the near cache's barrier."""

    def count(self, counter_key: str, ttl_ms: int) -> int:
        """Increment a windowed counter, setting its expiry; returns the new value."""

    def purge(self, match: str, select: Callable[[str], bool]) -> int:
        """Delete the keys matching the glob ``match`` for which ``select`` is true; returns how many."""

    def close(self) -> None:
        """Release connections."""
