"""``/metrics`` in Prometheus text format, correct across gunicorn worker processes.

Each app keeps its metrics in its own registry (tests read exact values).
Under gunicorn, ``PROMETHEUS_MULTIPROC_DIR`` is set (gunicorn.conf.py does it)
and prometheus_client writes every process's values to files there; the
endpoint then aggregates all processes instead of reporting the one that
happened to answer.
"""

from __future__ import annotations

import os

from flask import Blueprint, Flask, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

blp = Blueprint("metrics", __name__)


def registry() -> CollectorRegistry:
    return current_app.extensions["shelf.metrics_registry"]


def collected() -> CollectorRegistry:
    """Every process's metrics under gunicorn (multiprocess mode), else this app's registry."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return registry()
    source = CollectorRegistry()
    MultiProcessCollector(source)
    return source


@blp.get("/metrics")
def metrics():
    """Prometheus metrics of every worker process."""
    # content_type, not mimetype: Flask would add a second charset to the one CONTENT_TYPE_LATEST has.
    return Response(generate_latest(collected()), content_type=CONTENT_TYPE_LATEST)


def init_app(app: Flask) -> CollectorRegistry:
    app.extensions["shelf.metrics_registry"] = CollectorRegistry()
    app.register_blueprint(blp)
    return app.extensions["shelf.metrics_registry"]
