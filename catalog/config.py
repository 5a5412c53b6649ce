"""All of Shelf's configuration, read from environment variables in one place.

Every setting has a default that works on a developer machine, except the
secrets: outside development (``SHELF_ENV`` other than ``development`` or
``test``) a missing ``SHELF_API_TOKENS`` or ``SHELF_SECRET_KEY`` refuses to
start rather than run with a guessable value.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from cache.backends.cluster import is_cluster_url

DEV_TOKEN = "dev-token"  # noqa: S105 - development only; refused elsewhere
"""Write token accepted in development when ``SHELF_API_TOKENS`` is unset."""

DEV_SECRET_KEY = "dev-secret-key-not-for-production"  # noqa: S105
"""Signs pagination cursors in development when ``SHELF_SECRET_KEY`` is unset."""

RELAXED_ENVS = ("development", "test")


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the app refuses to start."""


def _int(env: dict, name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def _at_least(env: dict, name: str, default: int, least: int) -> int:
    value = _int(env, name, default)
    if value < least:
        raise ConfigError(f"{name} must be at least {least}, got {value}")
    return value


def _ratio(env: dict, name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number from 0 to 1, got {raw!r}") from exc
    if not 0 <= value <= 1:
        raise ConfigError(f"{name} must be a number from 0 to 1, got {raw!r}")
    return value


def _bool(env: dict, name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def parse_tokens(raw: str) -> dict[str, str]:
    """Parse ``name:token,token2`` into ``{name: token}``; unnamed tokens get ``token-N``.

    Names let an operator revoke one client's token without touching the others.
    """
    tokens: dict[str, str] = {}
    for index, item in enumerate(part.strip() for part in raw.split(",")):
        if not item:
            continue
        name, sep, token = item.partition(":")
        if not sep:
            name, token = f"token-{index + 1}", item
        if not token or not name:
            raise ConfigError("SHELF_API_TOKENS entries must be 'token' or 'name:token'")
        tokens[name] = token
    return tokens


def parse_ttls(raw: str) -> dict[str, tuple[float, float]]:
    """Parse ``product=3600/300,product_list=900/60`` into ``{resource: (hard, soft)}`` seconds."""
    ttls: dict[str, tuple[float, float]] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        try:
            resource, _, pair = item.partition("=")
            hard, _, soft = pair.partition("/")
            ttls[resource.strip()] = (float(hard), float(soft or hard))
        except ValueError as exc:
            raise ConfigError(f"SHELF_CACHE_TTLS entries are resource=hard/soft, got {item!r}") from exc
    return ttls


ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")


def parse_origins(raw: str) -> tuple[str, ...]:
    """Parse ``https://a.example,http://localhost:3000`` into exact origins (no paths, no wildcards)."""
    origins = tuple(filter(None, (part.strip().rstrip("/") for part in raw.split(","))))
    for origin in origins:
        if not ORIGIN.match(origin):
            raise ConfigError(f"SHELF_CORS_ORIGINS entries look like https://shop.example, got {origin!r}")
    return origins


EDGE_TAG_HEADERS = ("xkey", "Surrogate-Key", "none")


def _choice(env: dict, name: str, choices: tuple[str, ...], default: str) -> str:
    raw = env.get(name) or default
    for choice in choices:
        if raw.lower() == choice.lower():
            return choice
    raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")


def parse_edge_urls(raw: str) -> tuple[str, ...]:
    """Parse ``http://varnish-1:6081,http://varnish-2:6081`` into the edges' base URLs."""
    urls = tuple(filter(None, (part.strip().rstrip("/") for part in raw.split(","))))
    for url in urls:
        if not re.match(r"^https?://[A-Za-z0-9.\[\]:-]+(/[^\s,]*)?$", url):
            raise ConfigError(f"SHELF_EDGE_PURGE_URLS entries look like http://varnish:6081, got {url!r}")
    return urls


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    database_url: str = "postgresql+psycopg2://postgres@127.0.0.1:5432/shelf"
    replica_database_url: str = ""  # a streaming replica for cache fills (catalog.replica); empty: none
    redis_url: str = "redis://127.0.0.1:6379/0"
    api_tokens: dict[str, str] = field(default_factory=lambda: {"dev": DEV_TOKEN})
    secret_key: str = DEV_SECRET_KEY
    max_body_bytes: int = 1024 * 1024
    db_pool_size: int = 5
    db_statement_timeout_ms: int = 5000
    log_level: str = "INFO"
    demo_products: int = 10_000
    cache_enabled: bool = True
    cache_prefix: str = "shelf"
    cache_redis_timeout_ms: int = 100
    cache_ttls: dict[str, tuple[float, float]] = field(default_factory=dict)
    cache_negative_ttl: float = 30.0
    cache_wait_ms: int = 250
    cache_refresh_threads: int = 2  # background recomputes of stale entries per process; 0: in the request
    cache_local_entries: int = 50_000  # near cache per process, ~1.3 KB each; 0 turns it off (Redis Cluster)
    cache_local_max_age: int = 300  # the product entry's soft TTL
    fast_path: bool = True  # answer cache hits of GET /v1/products/<id> before Flask (api.fast_path)
    http_max_age: int = 5
    http_stale_while_revalidate: int = 30
    queue_redis_url: str = ""  # empty: the redis_url server (rq cannot run on Redis Cluster; the cache can)
    jobs_eager: bool = False
    recompute_debounce_seconds: int = 2
    full_recompute_seconds: int = 3600
    warm_on_start: bool = True
    warm_on_start_limit: int = 100_000  # products, the most read first: the whole of most catalogs
    warm_ready_ratio: float = 0.95  # /readyz is "warming" until the warm covers this share of reads
    warm_ready_seconds: int = 30  # ... or this long after the start, whichever comes first
    warm_max_waiting: int = 5  # warm jobs that may wait on the low queue; past it a trigger is a 503
    popularity_flush_seconds: float = 5.0
    rate_limits_enabled: bool = True
    rate_limit_reads: str = "1200/minute"
    rate_limit_writes: str = "120/minute"
    rate_limit_redis_url: str = ""  # empty: the redis_url server
    rate_limit_prefix: str = "shelf-ratelimit"  # not under the cache prefix: a cache purge keeps it
    trusted_proxies: int = 0
    cors_origins: tuple[str, ...] = ()
    hsts_seconds: int = 0
    edge_tag_header: str = "xkey"  # surrogate keys on cacheable responses: xkey, Surrogate-Key or none
    edge_purge_urls: tuple[str, ...] = ()  # HTTP caches (Varnish) every write purges, catalog.edge_purge
    edge_purge_timeout_ms: int = 1000  # how long a write waits for the edges' acks
    edge_purge_mode: str = "purge"  # or softpurge (keeps objects in grace: no read-your-writes)

    def __post_init__(self) -> None:
        check_cluster_use(self)

    @classmethod
    def from_env(cls, environ: dict | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        shelf_env = env.get("SHELF_ENV", "development")
        relaxed = shelf_env in RELAXED_ENVS
        tokens_raw = env.get("SHELF_API_TOKENS", "")
        secret = env.get("SHELF_SECRET_KEY", "")
        if not relaxed and not tokens_raw:
            raise ConfigError("SHELF_API_TOKENS is required outside development")
        if not relaxed and not secret:
            raise ConfigError("SHELF_SECRET_KEY is required outside development")
        return cls(
            env=shelf_env,
            database_url=normalize_database_url(env.get("DATABASE_URL") or cls.database_url),
            replica_database_url=normalize_database_url(env.get("SHELF_REPLICA_DATABASE_URL", "")),
            redis_url=env.get("REDIS_URL") or cls.redis_url,
            api_tokens=parse_tokens(tokens_raw) if tokens_raw else {"dev": DEV_TOKEN},
            secret_key=secret or DEV_SECRET_KEY,
            max_body_bytes=_int(env, "SHELF_MAX_BODY_BYTES", cls.max_body_bytes),
            db_pool_size=_int(env, "SHELF_DB_POOL_SIZE", cls.db_pool_size),
            db_statement_timeout_ms=_int(env, "SHELF_DB_STATEMENT_TIMEOUT_MS", cls.db_statement_timeout_ms),
            log_level=env.get("SHELF_LOG_LEVEL", cls.log_level).upper(),
            demo_products=_int(env, "SHELF_DEMO_PRODUCTS", cls.demo_products),
            cache_enabled=_bool(env, "SHELF_CACHE_ENABLED", cls.cache_enabled),
            cache_prefix=env.get("SHELF_CACHE_PREFIX") or cls.cache_prefix,
            cache_redis_timeout_ms=_int(env, "SHELF_CACHE_REDIS_TIMEOUT_MS", cls.cache_redis_timeout_ms),
            cache_ttls=parse_ttls(env.get("SHELF_CACHE_TTLS", "")),
            cache_negative_ttl=_int(env, "SHELF_CACHE_NEGATIVE_TTL", int(cls.cache_negative_ttl)),
            cache_wait_ms=_int(env, "SHELF_CACHE_WAIT_MS", cls.cache_wait_ms),
            cache_refresh_threads=_at_least(env, "SHELF_CACHE_REFRESH_THREADS", cls.cache_refresh_threads, 0),
            cache_local_entries=_at_least(env, "SHELF_CACHE_LOCAL_ENTRIES", cls.cache_local_entries, 0),
            cache_local_max_age=_at_least(env, "SHELF_CACHE_LOCAL_MAX_AGE", cls.cache_local_max_age, 1),
            fast_path=_bool(env, "SHELF_FAST_PATH", cls.fast_path),
            http_max_age=_int(env, "SHELF_HTTP_MAX_AGE", cls.http_max_age),
            http_stale_while_revalidate=_int(
                env, "SHELF_HTTP_STALE_WHILE_REVALIDATE", cls.http_stale_while_revalidate
            ),
            queue_redis_url=env.get("SHELF_QUEUE_REDIS_URL", ""),
            jobs_eager=_bool(env, "SHELF_JOBS_EAGER", cls.jobs_eager),
            recompute_debounce_seconds=_int(
                env, "SHELF_RECOMPUTE_DEBOUNCE_SECONDS", cls.recompute_debounce_seconds
            ),
            full_recompute_seconds=_int(env, "SHELF_FULL_RECOMPUTE_SECONDS", cls.full_recompute_seconds),
            warm_on_start=_bool(env, "SHELF_WARM_ON_START", cls.warm_on_start),
            warm_on_start_limit=_int(env, "SHELF_WARM_ON_START_LIMIT", cls.warm_on_start_limit),
            warm_ready_ratio=_ratio(env, "SHELF_WARM_READY_RATIO", cls.warm_ready_ratio),
            warm_ready_seconds=_at_least(env, "SHELF_WARM_READY_SECONDS", cls.warm_ready_seconds, 0),
            warm_max_waiting=_at_least(env, "SHELF_WARM_MAX_WAITING", cls.warm_max_waiting, 1),
            popularity_flush_seconds=_int(env, "SHELF_POPULARITY_FLUSH_SECONDS", 5),
            rate_limits_enabled=_bool(env, "SHELF_RATE_LIMITS_ENABLED", cls.rate_limits_enabled),
            rate_limit_reads=env.get("SHELF_RATE_LIMIT_READS") or cls.rate_limit_reads,
            rate_limit_writes=env.get("SHELF_RATE_LIMIT_WRITES") or cls.rate_limit_writes,
            rate_limit_redis_url=env.get("SHELF_RATE_LIMIT_REDIS_URL", ""),
            rate_limit_prefix=env.get("SHELF_RATE_LIMIT_PREFIX") or cls.rate_limit_prefix,
            trusted_proxies=_int(env, "SHELF_TRUSTED_PROXIES", cls.trusted_proxies),
            cors_origins=parse_origins(env.get("SHELF_CORS_ORIGINS", "")),
            hsts_seconds=_int(env, "SHELF_HSTS_SECONDS", cls.hsts_seconds),
            edge_tag_header=_choice(env, "SHELF_EDGE_TAG_HEADER", EDGE_TAG_HEADERS, cls.edge_tag_header),
            edge_purge_urls=parse_edge_urls(env.get("SHELF_EDGE_PURGE_URLS", "")),
            edge_purge_timeout_ms=_at_least(env, "SHELF_EDGE_PURGE_TIMEOUT_MS", cls.edge_purge_timeout_ms, 1),
            edge_purge_mode=_choice(
                env, "SHELF_EDGE_PURGE_MODE", ("purge", "softpurge"), cls.edge_purge_mode
            ),
        )

    @property
    def queue_url(self) -> str:
        return self.queue_redis_url or self.redis_url

    def replace(self, **changes) -> Settings:
        from dataclasses import replace

        return replace(self, **changes)


def check_cluster_use(settings: Settings) -> None:
    """Refuse a Redis Cluster URL (``redis+cluster://``) wherever what uses it needs one server."""
    if is_cluster_url(settings.queue_url):
        named = "SHELF_QUEUE_REDIS_URL" if settings.queue_redis_url else "REDIS_URL (used for queues too)"
        raise ConfigError(
            f"{named} names a Redis Cluster, but rq queues need a standalone Redis (rq moves jobs "
            "between keys of different slots): set SHELF_QUEUE_REDIS_URL to a standalone server"
        )
    if settings.rate_limits_enabled and is_cluster_url(settings.rate_limit_redis_url or settings.redis_url):
        raise ConfigError(
            "rate-limit counters need a standalone Redis, and SHELF_RATE_LIMIT_REDIS_URL (or REDIS_URL, "
            "its default) names a Redis Cluster: set SHELF_RATE_LIMIT_REDIS_URL to a standalone server"
        )
    if is_cluster_url(settings.redis_url) and settings.cache_enabled and settings.cache_local_entries:
        raise ConfigError(
            "the near cache cannot run on a Redis Cluster yet (its key tracking is per node), and "
            "REDIS_URL names one: set SHELF_CACHE_LOCAL_ENTRIES=0"
        )


def normalize_database_url(url: str) -> str:
    """Accept the usual ``postgres://`` and ``postgresql://`` forms; we drive psycopg2."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url
