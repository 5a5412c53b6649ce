"""Per-client rate limits: a read budget per client IP, a write budget per token name.

Flask-Limiter counts, in Redis, so every worker process and API instance
shares one budget per client. Two application-wide limits split the traffic:
``reads`` (GET, HEAD, OPTIONS) keyed by the client IP (see ``api.proxies``
for how the IP is found behind proxies) and ``writes`` keyed by the token's
name, or by the IP when the request carries no valid token (so guessing
tokens is limited too). Over budget is a 429 problem with ``Retry-After``.
Every limited response carries the ``RateLimit-Policy`` and ``RateLimit``
fields of draft-ietf-httpapi-ratelimit-headers-10, written here because
Flask-Limiter only knows the older ``X-RateLimit-*`` names.

When Redis fails, limiting fails open: the request is served unlimited, with
a ``shelf.limits`` log line and ``shelf_rate_limit_storage_errors_total``.
Flask-Limiter's own ``swallow_errors`` would log to its own logger and count
nothing, and its in-memory fallback would split the budget per process, so
the subclass below catches the storage error itself; a circuit breaker keeps
an outage from costing a Redis timeout on every request.
"""

from __future__ import annotations

import logging
import math
import time

from flask import Flask, Response, current_app, g, request
from flask_limiter import ApplicationLimit, Limiter, RateLimitExceeded, RequestLimit
from limits import parse_many
from limits.errors import StorageError
from prometheus_client import CollectorRegistry, Counter

from cache.breaker import Breaker

from .auth import client_for
from .config import ConfigError, Settings
from .errors import render

log = logging.getLogger("shelf.limits")

READ_METHODS = ("GET", "HEAD", "OPTIONS")
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"})
"""Probes, metrics and docs: an orchestrator or a browser must never be throttled out of them."""

STORAGE_TIMEOUT_SECONDS = 0.25
"""Redis socket timeouts for the counters: a slow Redis must not hold requests up."""

BREAKER_COOLDOWN_SECONDS = 5.0
"""After a storage failure, requests go unlimited without touching Redis for this long."""

REGISTRY_KEY = "shelf.metrics_registry"
EXTENSION_KEY = "shelf.limiter"


class FailOpenLimiter(Limiter):
    """A Limiter that serves the request when its storage fails, and says so."""

    def __init__(self, *args, breaker: Breaker, errors: Counter, **kwargs):
        super().__init__(*args, **kwargs)
        self.breaker = breaker
        self.errors = errors

    def _check_request_limit(self, callable_name=None, in_middleware=True) -> None:
        # Flask-Limiter's before_request hook; a private method, one reason the version is pinned.
        if request.path in EXEMPT_PATHS or not self.breaker.allow():
            return
        try:
            super()._check_request_limit(callable_name, in_middleware)
        except StorageError as exc:
            self.context.reset()
            self.storage_failed(exc)
            return
        except RateLimitExceeded:
            self.breaker.record_success()
            raise
        self.breaker.record_success()

    def storage_failed(self, exc: StorageError) -> None:
        self.breaker.record_failure()
        self.errors.inc()
        log.warning(
            "rate limit storage unavailable; serving without limits",
            extra={"fields": {"request_id": g.get("request_id"), "error": str(exc.__cause__ or exc)}},
        )


def client_ip() -> str:
    return request.remote_addr or "unknown"


def read_key() -> str:
    return "ip:" + client_ip()


def write_key() -> str:
    """The token's name, so a client's budget follows it across addresses; else its IP."""
    name = client_for(request.headers.get("Authorization"), current_app.config["SHELF"].api_tokens)
    return "token:" + name if name else "ip:" + client_ip()


def metrics_registry(app: Flask) -> CollectorRegistry:
    """The registry ``api.metrics`` creates and ``/metrics`` serves (a new one if it has not run)."""
    return app.extensions.setdefault(REGISTRY_KEY, CollectorRegistry())


def check_limit_string(name: str, value: str) -> str:
    try:
        parse_many(value)
    except ValueError as exc:
        raise ConfigError(f"{name} must look like '120/minute', got {value!r}") from exc
    return value


def build_limiter(settings: Settings, errors: Counter) -> FailOpenLimiter:
    budgets = [
        ApplicationLimit(
            limit_provider=check_limit_string("SHELF_RATE_LIMIT_READS", settings.rate_limit_reads),
            key_function=read_key,
            scope="reads",
            methods=READ_METHODS,
        ),
        ApplicationLimit(
            limit_provider=check_limit_string("SHELF_RATE_LIMIT_WRITES", settings.rate_limit_writes),
            key_function=write_key,
            scope="writes",
            methods=WRITE_METHODS,
        ),
    ]
    return FailOpenLimiter(
        read_key,
        application_limits=budgets,
        storage_uri=settings.rate_limit_redis_url or settings.redis_url,
        storage_options={
            "key_prefix": settings.rate_limit_prefix,
            "wrap_exceptions": True,
            "socket_timeout": STORAGE_TIMEOUT_SECONDS,
            "socket_connect_timeout": STORAGE_TIMEOUT_SECONDS,
        },
        strategy="fixed-window",
        headers_enabled=False,  # ours below follow the current draft
        breaker=Breaker(threshold=1, cooldown=BREAKER_COOLDOWN_SECONDS),
        errors=errors,
    )


def policy_names(limits: list[RequestLimit]) -> list[str]:
    """``reads`` for a one-limit budget; ``reads-60s``, ``reads-3600s`` when it has several windows."""
    scopes = [lim.request_args[-1] for lim in limits]
    return [
        scope if scopes.count(scope) == 1 else f"{scope}-{lim.limit.get_expiry()}s"
        for scope, lim in zip(scopes, limits, strict=True)
    ]


def rate_limit_headers(limits: list[RequestLimit]) -> dict[str, str]:
    """``RateLimit-Policy``/``RateLimit`` for the limits this request was counted against."""
    policies, states, resets = [], [], []
    for name, lim in zip(policy_names(limits), limits, strict=True):
        reset_time, remaining = lim.window
        window = lim.limit.get_expiry()
        reset = min(window, max(0, math.ceil(reset_time - time.time())))
        policies.append(f'"{name}";q={lim.limit.amount};w={window}')
        states.append(f'"{name}";r={max(0, remaining)};t={reset}')
        if lim.breached:
            resets.append(reset)
    headers = {"RateLimit-Policy": ", ".join(policies), "RateLimit": ", ".join(states)}
    if resets:
        headers["Retry-After"] = str(max(resets))
    return headers


def add_headers(response: Response) -> Response:
    limiter: FailOpenLimiter = current_app.extensions[EXTENSION_KEY]
    limits = limiter.current_limits
    if not limits:
        return response
    try:
        response.headers.update(rate_limit_headers(limits))
    except StorageError as exc:
        limiter.storage_failed(exc)
    return response


def handle_rate_limited(error: RateLimitExceeded) -> Response:
    budget = error.limit.scope
    detail = f"too many {budget}: the limit is {error.limit.limit}; retry after Retry-After seconds"
    return render(429, "Too Many Requests", detail, type_="/problems/rate-limited")


def init_app(app: Flask, settings: Settings) -> None:
    if not settings.rate_limits_enabled:
        return
    errors = Counter(
        "shelf_rate_limit_storage_errors",
        "Requests served without rate limiting because the counter store failed",
        registry=metrics_registry(app),
    )
    limiter = build_limiter(settings, errors)
    limiter.init_app(app)
    app.extensions[EXTENSION_KEY] = limiter
    app.after_request(add_headers)
    app.register_error_handler(RateLimitExceeded, handle_rate_limited)
