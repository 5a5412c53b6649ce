"""Where a cache hit's time goes: py-spy samples one gunicorn worker under product-detail-only load.

Run after the measured arms (never during one: sampling costs CPU on a 2-core machine), against a
fresh, warmed server with shoppers only and no revalidation, so nearly every request is a
``GET /v1/products/{id}`` hit. py-spy (``--nonblocking``) records the worker twice: once with
``--gil`` (only the thread holding the GIL: where the Python CPU goes) and once with every active
thread (also time in system calls such as socket sends, and threads waiting to get the GIL back).
The collapsed stacks are summed into the functions with the most cumulative and self time, and into
the share of samples that pass through each component (the rate limiter, request logging, ...).
"""

from __future__ import annotations

import re
import subprocess
import time
from collections import Counter
from pathlib import Path

import psutil

from . import arms, probes
from .server import gunicorn, venv_tool

COMPONENTS = {
    "gunicorn (HTTP parsing, socket writes)": ("gunicorn/",),
    "Flask / Werkzeug request handling": ("flask/app.py", "flask/ctx.py", "werkzeug/"),
    "flask-smorest / webargs / marshmallow": ("flask_smorest/", "webargs/", "marshmallow/"),
    "rate limiter (api/guards/rate_limits.py, limits)": ("limits/", "api/guards/rate_limits.py"),
    "request log (JSON line per request)": ("api/request_log.py", "logging/"),
    "cache region (api/caching.py, cache/)": ("api/caching.py", "cache/"),
    "redis-py client (all Redis calls)": ("redis/",),
    "SQLAlchemy / psycopg2": ("sqlalchemy/", "psycopg2/"),
    "prometheus_client (metrics)": ("prometheus_client/",),
    "security headers, CORS, input guards": (
        "api/guards/security_headers.py",
        "api/guards/cors.py",
        "api/guards/input_guards.py",
    ),
}
"""Which frames (by file) make up each component; a sample counts once per component it passes through."""

FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
ABSOLUTE = re.compile(r"^/.*?(?:site-packages/|lib/python3\.\d+/)")


MODES = {"gil": ("--gil",), "active": ()}
"""py-spy runs: the thread holding the GIL only, and every thread not idle."""


def record(pid: int, seconds: int, rate: int, path: Path, extra: tuple[str, ...]) -> str | None:
    """Record ``pid`` into ``path``; returns what went wrong, or None."""
    command = [venv_tool("py-spy"), "record", "-p", str(pid), "-d", str(seconds), "-r", str(rate)]
    command += ["--nonblocking", "--function", "--format", "raw", "-o", str(path), *extra]
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0 or not path.exists():
        return (result.stderr or result.stdout).strip()[-500:] or "py-spy wrote nothing"
    return None


def frame_name(frame: str) -> tuple[str, str]:
    """``(function, file)`` of one py-spy frame, the file without any machine path."""
    match = FRAME.match(frame.strip())
    function, file = (match["function"], match["file"]) if match else (frame.strip(), "")
    return function, ABSOLUTE.sub("", file)


def summarize(raw: str, top: int = 40) -> dict:
    cumulative, own, components = Counter(), Counter(), Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [frame_name(frame) for frame in stack.split(";")]
        labels = [f"{function} ({file})" for function, file in frames]
        total += int(count)
        own[labels[-1]] += int(count)
        for label in set(labels):
            cumulative[label] += int(count)
        files = {file for _, file in frames}
        for component, prefixes in COMPONENTS.items():
            if any(file.startswith(prefixes) for file in files):
                components[component] += int(count)
    share = (lambda n: round(n / total, 4)) if total else (lambda n: 0.0)
    return {
        "samples": total,
        "cumulative": [(label, share(n)) for label, n in cumulative.most_common(top)],
        "self": [(label, share(n)) for label, n in own.most_common(top)],
        "components": [(name, share(n)) for name, n in components.most_common()],
    }


def one_worker(master_pid: int) -> int:
    workers = psutil.Process(master_pid).children()
    if not workers:
        raise RuntimeError("gunicorn has no worker processes to profile")
    return workers[0].pid


def profile_hit_path(opts, base_env: dict[str, str], out_dir: Path) -> dict:
    """Warm a fresh server, load it with product-detail reads, and profile one worker."""
    out_dir.mkdir(parents=True, exist_ok=True)
    hot = arms.Arm("profile", "product detail hits", True, True, ("ShopperUser",))
    env = arms.app_env(base_env, opts, hot)
    with gunicorn(env, out_dir / "gunicorn.log") as server:
        prepared = arms.prepare_cache(hot, opts, server, env, out_dir / "locust")
        seconds = opts.profile_seconds
        no_revalidation = ("--revalidate-share", "0")
        command = arms.locust_command(
            opts, server.base_url, hot.users, 2 * seconds + 10, out_dir / "locust", opts.seed, no_revalidation
        )
        process = arms.start_locust(command, env, out_dir / "locust.log")
        time.sleep(4)
        before, worker = probes.scrape(server.base_url), one_worker(server.pid)
        errors = {
            mode: record(worker, seconds, opts.profile_rate, out_dir / f"pyspy-{mode}.txt", extra)
            for mode, extra in MODES.items()
        }
        after = probes.scrape(server.base_url)
        arms.stop_gracefully(process)
    failed = {mode: error for mode, error in errors.items() if error}
    if failed:
        return {"ok": False, "error": "; ".join(f"{mode}: {error}" for mode, error in failed.items())}
    product = probes.delta(after, before)["cache"].get("product", {})
    return {
        "ok": True,
        "seconds": seconds,
        "rate": opts.profile_rate,
        "warm": prepared.get("warm", {}).get("method"),
        "product_hit_ratio": probes.hit_ratio(product),
        **{mode: summarize((out_dir / f"pyspy-{mode}.txt").read_text()) for mode in MODES},
    }
