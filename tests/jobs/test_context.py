"""Which runtime a job runs in (jobs.context): the app's it runs inside, else the process's."""

from __future__ import annotations

import logging

from catalog.logs import JsonFormatter
from jobs import context


def test_a_job_inside_an_app_gets_that_apps_runtime_and_outside_the_one_in_use(app, make_app):
    worker_app = make_app()
    context.use(worker_app.extensions["shelf.runtime"])
    try:
        with app.app_context():
            assert context.runtime() is app.extensions["shelf.runtime"]
        assert context.runtime() is worker_app.extensions["shelf.runtime"]
    finally:
        context.use(None)


def test_a_worker_builds_its_runtime_from_the_environment_with_shelfs_json_log_lines(monkeypatch, settings):
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("SHELF_ENV", "test")
    context.use(None)
    try:
        built = context.runtime()
        assert built.settings.database_url == settings.database_url
        assert context.runtime() is built  # once per process
        handlers = logging.getLogger("shelf").handlers
        assert any(isinstance(handler.formatter, JsonFormatter) for handler in handlers)
    finally:
        built.dispose()
        context.use(None)
