"""Liveness and readiness probes."""

from __future__ import annotations

import orjson
from flask import Blueprint, Response, current_app
from sqlalchemy import text

from .. import db
from ..errors import RETRY_AFTER_SECONDS, problem

blp = Blueprint("ops", __name__)


@blp.get("/healthz")
def healthz():
    """Liveness: the process answers. No I/O, so it is also the framework's floor in benchmarks."""
    return Response(b'{"status":"ok"}', mimetype="application/json")


@blp.get("/readyz")
def readyz():
    """Readiness: PostgreSQL and Redis both answer, and the warm on start has done enough (catalog.readiness);
    503 names what is down, or says "warming"."""
    checks = {"postgres": _check(_ping_postgres), "redis": _check(_ping_redis)}
    down = sorted(name for name, state in checks.items() if state != "ok")
    warm = current_app.extensions["shelf.warm_gate"].state()
    if not down and warm == "ok":
        return Response(orjson.dumps({"status": "ok", "checks": checks}), mimetype="application/json")
    if warm != "ok":
        checks["warm"] = warm
    detail = f"not ready: {', '.join(down)} unavailable" if down else "not ready: warming"
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    raise problem(503, detail, headers=headers, members={"checks": checks})


def _check(probe) -> str:
    try:
        probe()
    except Exception:  # noqa: BLE001 - any failure means not ready
        return "down"
    return "ok"


def _ping_postgres() -> None:
    with db.engine().connect() as conn:
        conn.execute(text("SELECT 1"))


def _ping_redis() -> None:
    current_app.extensions["shelf.redis"].ping()
