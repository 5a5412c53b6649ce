"""Cache policy in one frozen dataclass: TTLs per resource, single-flight and breaker tuning.

The resources and their TTLs are the app's to declare (Shelf's are ``catalog.resources``); the
rest of the policy has a default here.

Every default is a named module constant so the numbers are documented once and the
app's settings module can override any of them with ``dataclasses.replace``. Times are
seconds unless the name says ``_ms``. Nothing here reads the environment: the app does
that and hands the result in, so tests build exactly the policy they need.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

DEFAULT_KEY_PREFIX = "shelf"
"""First segment of every key; lets several apps or environments share one Redis."""


@dataclass(frozen=True)
class ResourceTTL:
    """Hard TTL (Redis deletes the entry) and soft TTL (the entry is stale, refresh it)."""

    hard: float
    soft: float

    def __post_init__(self) -> None:
        if not 0 < self.soft <= self.hard:
            raise ValueError(f"need 0 < soft <= hard, got soft={self.soft} hard={self.hard}")


NEGATIVE_TTL = 30.0
"""Lifetime of a cached 404: long enough to absorb a retry storm, short enough to forget."""

NEGATIVE_CAP = 10_000
"""Most negative entries created per window; past it 404s are served but not cached."""

NEGATIVE_WINDOW = 30.0
"""Length of the window the negative cap counts over."""

JITTER = 0.10
"""TTLs are shortened by up to this fraction at random so keys filled together expire apart."""

LEASE_TTL_MS = 5_000
"""A fill lease outlives any sane creator; if its holder dies, the key is free again after this."""

WAIT_BUDGET_MS = 250
"""How long a caller that lost the lease waits for the winner's fill before computing itself."""

WAIT_POLL_MS = 10
"""Interval at which a waiting caller re-reads the entry."""

REDIS_TIMEOUT_MS = 100
"""Socket connect/read timeout: a slow Redis must cost less than the database query it saves."""

BREAKER_THRESHOLD = 5
"""Consecutive Redis failures that open the circuit breaker."""

BREAKER_COOLDOWN = 5.0
"""Seconds the breaker stays open before letting one probe through."""

GENERATION_TTL = 86_400.0
"""Generation counters expire when idle; must exceed every hard TTL (see ``Region.invalidate``)."""

XFETCH_BETA = 1.0
"""XFetch eagerness: > 1 refreshes earlier, 0 disables probabilistic early refresh."""


@dataclass(frozen=True)
class CacheConfig:
    """The whole cache policy; build one per app and share it between regions."""

    key_prefix: str = DEFAULT_KEY_PREFIX
    ttls: Mapping[str, ResourceTTL] = field(default_factory=lambda: MappingProxyType({}))  # by resource
    negative_ttl: float = NEGATIVE_TTL
    negative_cap: int = NEGATIVE_CAP
    negative_window: float = NEGATIVE_WINDOW
    jitter: float = JITTER
    lease_ttl_ms: int = LEASE_TTL_MS
    wait_budget_ms: int = WAIT_BUDGET_MS
    wait_poll_ms: int = WAIT_POLL_MS
    redis_timeout_ms: int = REDIS_TIMEOUT_MS
    breaker_threshold: int = BREAKER_THRESHOLD
    breaker_cooldown: float = BREAKER_COOLDOWN
    generation_ttl: float = GENERATION_TTL
    xfetch_beta: float = XFETCH_BETA

    def __post_init__(self) -> None:
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        if any(ttl.hard >= self.generation_ttl for ttl in self.ttls.values()):
            raise ValueError("generation_ttl must exceed every hard TTL")

    def ttl_for(self, resource: str, status: int) -> ResourceTTL:
        """TTLs for an entry of ``resource``; a 404 gets the negative TTL, with no stale phase."""
        if status == 404:
            return ResourceTTL(hard=self.negative_ttl, soft=self.negative_ttl)
        return self.ttls[resource]
