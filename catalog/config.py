"""All of Shelf's configuration, read from environment variables in one place.

``Settings.from_env`` is what every process reads: the app, gunicorn.conf.py, the rq worker and the
periodic jobs, the CLI, scripts/run.sh (through ``print_settings``), the benchmarks and the
tests. ``ENV_VARIABLES`` lists the variables it reads, the README's configuration table exactly
those. Every setting has a default that works on a developer machine, except the secrets: outside
development (``SHELF_ENV`` other than ``development`` or ``test``) a missing ``SHELF_API_TOKENS`` or
``SHELF_SECRET_KEY`` refuses to start rather than run with a guessable value.

The fields after ``warm_on_start`` are tuning nobody should need: they are not read from the
environment, their defaults are the named constants below, and tests or benchmarks replace them in
code (``settings.replace(...)``).

Redis keys follow one scheme: ``SHELF_KEY_PREFIX`` (``shelf``) then a fixed namespace, ``cache``
for cache entries and ``limits`` for rate-limit counters, so a cache purge never touches a budget.
The queue server's keys are fixed (rq's own ``rq:`` keys and Shelf's ``shelf-jobs:``): rq's keys
carry no prefix, so two deployments never share a queue server anyway.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from cache.backends.cluster import is_cluster_url
from cache.config import DEFAULT_KEY_PREFIX, REDIS_TIMEOUT_MS, WAIT_BUDGET_MS

DEV_TOKEN = "dev-token"  # noqa: S105 - development only; refused elsewhere
"""Write token accepted in development when ``SHELF_API_TOKENS`` is unset."""

DEV_SECRET_KEY = "dev-secret-key-not-for-production"  # noqa: S105
"""Signs pagination cursors in development when ``SHELF_SECRET_KEY`` is unset."""

RELAXED_ENVS = ("development", "test")

ENV_VARIABLES = (
    "DATABASE_URL",
    "SHELF_REPLICA_DATABASE_URL",
    "REDIS_URL",
    "SHELF_QUEUE_REDIS_URL",
    "SHELF_ENV",
    "SHELF_API_TOKENS",
    "SHELF_SECRET_KEY",
    "SHELF_KEY_PREFIX",
    "SHELF_LOG_LEVEL",
    "SHELF_HOST",
    "SHELF_PORT",
    "SHELF_WEB_WORKERS",
    "SHELF_WEB_THREADS",
    "SHELF_DEMO_PRODUCTS",
    "SHELF_JOBS_EAGER",
    "SHELF_RATE_LIMITS_ENABLED",
    "SHELF_RATE_LIMIT_READS",
    "SHELF_RATE_LIMIT_WRITES",
    "SHELF_TRUSTED_PROXIES",
    "SHELF_CORS_ORIGINS",
    "SHELF_HSTS_SECONDS",
    "SHELF_CACHE_ENABLED",
    "SHELF_CACHE_TTLS",
    "SHELF_CACHE_LOCAL_ENTRIES",
    "SHELF_FAST_PATH",
    "SHELF_HTTP_MAX_AGE",
    "SHELF_EDGE_TAG_HEADER",
    "SHELF_EDGE_PURGE_URLS",
    "SHELF_EDGE_PURGE_MODE",
    "SHELF_WARM_ON_START",
)
"""Every environment variable ``Settings.from_env`` reads: the app's whole configuration."""

CACHE_NAMESPACE = "cache"
"""Keys of cache entries: ``<SHELF_KEY_PREFIX>:cache:...``."""

LIMITS_NAMESPACE = "limits"
"""Keys of rate-limit counters: ``<SHELF_KEY_PREFIX>:limits:...``, apart from the cache's."""

MAX_BODY_BYTES = 1024 * 1024
"""Largest request body: a product with 50 attributes and a long description is a few KB."""

HTTP_STALE_WHILE_REVALIDATE = 30
"""``Cache-Control: stale-while-revalidate`` (and Varnish's grace): how long a shared cache may serve
a response past max-age while it fetches a fresh one."""

RECOMPUTE_DEBOUNCE_SECONDS = 2
"""Delay that lets a burst of writes to one product share one aggregate recompute."""

WARM_ON_START_LIMIT = 100_000
"""Products the warm on start fills in all: the most read first, then the rest of the catalog in id
order (the whole of most catalogs; about 130 MB of entries in Redis at 100,000)."""

WARM_READY_RATIO = 0.95
"""``/readyz`` says "warming" until the warm on start covers this share of the coming reads, as
``jobs.warming.Coverage`` estimates it..."""

WARM_READY_SECONDS = 60
"""... or until this long after the start, so a missing worker cannot keep an instance out."""

WARM_MAX_WAITING = 5
"""Warm jobs that may wait on the ``low`` queue; past it a warm trigger is a 503 with Retry-After."""

POPULARITY_FLUSH_SECONDS = 5.0
"""How often each process sends its view counts to Redis (they rank the warm on start)."""

EDGE_PURGE_TIMEOUT_MS = 1000
"""How long a write waits for every edge's purge acknowledgement before it answers with the purge
pending (the edge outbox retries it)."""


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
    # Empty: the redis_url server. Queues, rate-limit counters, view counts and warm progress live
    # here; it must be one server (rq cannot run on Redis Cluster; the cache can).
    queue_redis_url: str = ""
    api_tokens: dict[str, str] = field(default_factory=lambda: {"dev": DEV_TOKEN})
    secret_key: str = DEV_SECRET_KEY
    key_prefix: str = DEFAULT_KEY_PREFIX
    log_level: str = "INFO"
    host: str = "127.0.0.1"  # where gunicorn listens
    port: int = 8000
    web_workers: int = 2  # gunicorn processes
    web_threads: int = 4  # threads per process
    demo_products: int = 10_000
    jobs_eager: bool = False
    rate_limits_enabled: bool = True
    rate_limit_reads: str = "1200/minute"
    rate_limit_writes: str = "120/minute"
    trusted_proxies: int = 0
    cors_origins: tuple[str, ...] = ()
    hsts_seconds: int = 0
    cache_enabled: bool = True
    cache_ttls: dict[str, tuple[float, float]] = field(default_factory=dict)
    cache_local_entries: int = 50_000  # near cache per process, ~1.3 KB each; 0 turns it off (Redis Cluster)
    fast_path: bool = True  # answer cache hits of GET /v1/products/<id> before Flask (api.fast_path)
    http_max_age: int = 5
    edge_tag_header: str = "xkey"  # surrogate keys on cacheable responses: xkey, Surrogate-Key or none
    edge_purge_urls: tuple[str, ...] = ()  # HTTP caches (Varnish) every write purges, catalog.edge_purge
    edge_purge_mode: str = "purge"  # or softpurge (keeps objects in grace: no read-your-writes)
    warm_on_start: bool = True
    # Not read from the environment (see the module docstring).
    max_body_bytes: int = MAX_BODY_BYTES
    cache_redis_timeout_ms: int = REDIS_TIMEOUT_MS
    cache_wait_ms: int = WAIT_BUDGET_MS
    http_stale_while_revalidate: int = HTTP_STALE_WHILE_REVALIDATE
    recompute_debounce_seconds: int = RECOMPUTE_DEBOUNCE_SECONDS
    warm_on_start_limit: int = WARM_ON_START_LIMIT
    warm_ready_ratio: float = WARM_READY_RATIO
    warm_ready_seconds: int = WARM_READY_SECONDS
    warm_max_waiting: int = WARM_MAX_WAITING
    popularity_flush_seconds: float = POPULARITY_FLUSH_SECONDS
    edge_purge_timeout_ms: int = EDGE_PURGE_TIMEOUT_MS
    rate_limit_prefix: str = ""  # empty: <key_prefix>:limits; tests give each app its own budgets

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
            queue_redis_url=env.get("SHELF_QUEUE_REDIS_URL", ""),
            api_tokens=parse_tokens(tokens_raw) if tokens_raw else {"dev": DEV_TOKEN},
            secret_key=secret or DEV_SECRET_KEY,
            key_prefix=env.get("SHELF_KEY_PREFIX") or cls.key_prefix,
            log_level=env.get("SHELF_LOG_LEVEL", cls.log_level).upper(),
            host=env.get("SHELF_HOST") or cls.host,
            port=_at_least(env, "SHELF_PORT", cls.port, 0),
            web_workers=_at_least(env, "SHELF_WEB_WORKERS", cls.web_workers, 1),
            web_threads=_at_least(env, "SHELF_WEB_THREADS", cls.web_threads, 1),
            demo_products=_int(env, "SHELF_DEMO_PRODUCTS", cls.demo_products),
            jobs_eager=_bool(env, "SHELF_JOBS_EAGER", cls.jobs_eager),
            rate_limits_enabled=_bool(env, "SHELF_RATE_LIMITS_ENABLED", cls.rate_limits_enabled),
            rate_limit_reads=env.get("SHELF_RATE_LIMIT_READS") or cls.rate_limit_reads,
            rate_limit_writes=env.get("SHELF_RATE_LIMIT_WRITES") or cls.rate_limit_writes,
            trusted_proxies=_int(env, "SHELF_TRUSTED_PROXIES", cls.trusted_proxies),
            cors_origins=parse_origins(env.get("SHELF_CORS_ORIGINS", "")),
            hsts_seconds=_int(env, "SHELF_HSTS_SECONDS", cls.hsts_seconds),
            cache_enabled=_bool(env, "SHELF_CACHE_ENABLED", cls.cache_enabled),
            cache_ttls=parse_ttls(env.get("SHELF_CACHE_TTLS", "")),
            cache_local_entries=_at_least(env, "SHELF_CACHE_LOCAL_ENTRIES", cls.cache_local_entries, 0),
            fast_path=_bool(env, "SHELF_FAST_PATH", cls.fast_path),
            http_max_age=_int(env, "SHELF_HTTP_MAX_AGE", cls.http_max_age),
            edge_tag_header=_choice(env, "SHELF_EDGE_TAG_HEADER", EDGE_TAG_HEADERS, cls.edge_tag_header),
            edge_purge_urls=parse_edge_urls(env.get("SHELF_EDGE_PURGE_URLS", "")),
            edge_purge_mode=_choice(
                env, "SHELF_EDGE_PURGE_MODE", ("purge", "softpurge"), cls.edge_purge_mode
            ),
            warm_on_start=_bool(env, "SHELF_WARM_ON_START", cls.warm_on_start),
        )

    @property
    def queue_url(self) -> str:
        return self.queue_redis_url or self.redis_url

    @property
    def cache_prefix(self) -> str:
        return f"{self.key_prefix}:{CACHE_NAMESPACE}"

    @property
    def limits_prefix(self) -> str:
        return self.rate_limit_prefix or f"{self.key_prefix}:{LIMITS_NAMESPACE}"

    @property
    def write_token(self) -> str:
        """The first write token, the one ``make run`` prints."""
        return next(iter(self.api_tokens.values()))

    @property
    def db_pool_size(self) -> int:
        """A database connection for each request thread, and one for the stale-entry refresher."""
        return self.web_threads + 1

    def replace(self, **changes) -> Settings:
        from dataclasses import replace

        return replace(self, **changes)


def check_cluster_use(settings: Settings) -> None:
    """Refuse a Redis Cluster URL (``redis+cluster://``) wherever what uses it needs one server."""
    if is_cluster_url(settings.queue_url):
        named = "SHELF_QUEUE_REDIS_URL" if settings.queue_redis_url else "REDIS_URL (used for queues too)"
        raise ConfigError(
            f"{named} names a Redis Cluster, but rq queues and rate-limit counters need a standalone "
            "Redis (rq moves jobs between keys of different slots): set SHELF_QUEUE_REDIS_URL to a "
            "standalone server"
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


def print_settings(names: list[str]) -> None:
    """The named settings, one a line, for shell scripts (scripts/run.sh)."""
    settings = Settings.from_env()
    for name in names:
        print(getattr(settings, name))
