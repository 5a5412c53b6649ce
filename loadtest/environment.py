"""The machine and software a benchmark ran on, recorded with its results so every number has a context.

Cores, memory, CPU model, kernel, the load average before the run (the machine is shared), the
versions of Python, PostgreSQL, Redis and the Python packages on the request path, and the code's
git revision (``-dirty`` when the tree had uncommitted changes).
"""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import psutil
import redis
from sqlalchemy import create_engine, text

from catalog.config import normalize_database_url

from .server import ROOT

PACKAGES = ("flask", "gunicorn", "locust", "sqlalchemy", "psycopg2-binary", "redis", "hiredis", "orjson")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else ():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def postgres_version(database_url: str) -> str:
    engine = create_engine(normalize_database_url(database_url))
    try:
        with engine.connect() as conn:
            return conn.execute(text("SHOW server_version")).scalar_one()
    finally:
        engine.dispose()


def redis_version(redis_url: str) -> str:
    client = redis.Redis.from_url(redis_url)
    try:
        return client.info("server")["redis_version"]
    finally:
        client.close()


def git_revision() -> str:
    try:
        result = subprocess.run(  # noqa: S603 - fixed arguments
            ["git", "describe", "--always", "--dirty"],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return result.stdout.strip()


def versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def describe(database_url: str, redis_url: str) -> dict:
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu_model": cpu_model(),
        "kernel": f"{platform.system()} {platform.release()}",
        "load_average_before": [round(value, 2) for value in os.getloadavg()],
        "python": platform.python_version(),
        "postgresql": postgres_version(database_url),
        "redis": redis_version(redis_url),
        "packages": versions(),
        "git": git_revision(),
    }
