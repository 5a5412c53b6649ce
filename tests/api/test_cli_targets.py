"""The CLI in a second shell: it finds a running `make run`'s servers from the data folder's
services.json (as scripts/dev_services.py writes it), refuses to fall back to default servers nobody
named, and asks before deleting, naming what and where (``--yes`` skips the question)."""

from __future__ import annotations

import json
import os
import time

import psutil
import pytest

from api import create_app, local_servers
from tests.factories import make_category, make_product


def write_state(folder, pid: int, argv: list[str], exports: dict[str, str]) -> None:
    state = {"clients": {}, "ports": {}, "commands": {str(pid): {"argv": argv, "exports": exports}}}
    (folder / "services.json").write_text(json.dumps(state))


@pytest.fixture
def second_shell(monkeypatch, tmp_path, redis_client):
    """An environment as in a new shell: no DATABASE_URL / REDIS_URL, the data folder at tmp_path."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("SHELF_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SHELF_WARM_ON_START", "false")
    apps = []

    def cli(*args: str, input: str | None = None):
        app = create_app()
        apps.append(app)
        return app, app.test_cli_runner().invoke(args=list(args), input=input)

    yield cli
    for app in apps:
        app.extensions["shelf.engine"].dispose()


@pytest.fixture
def make_run(tmp_path, database_url, redis_url):
    """A live `make run` entry (this process's pid stands in for dev_services.py's) with the test servers."""
    exports = {"DATABASE_URL": database_url, "REDIS_URL": redis_url}
    write_state(tmp_path, os.getpid(), ["bash", "scripts/run.sh"], exports)
    return exports


@pytest.fixture
def cached(client, engine):
    """A product entry in the test Redis; ``cached()`` is whether it is still there."""
    product = make_product(engine, make_category(engine))
    client.get(f"/v1/products/{product.id}")
    return lambda: client.get(f"/v1/products/{product.id}").headers["X-Cache"] == "HIT"


def test_a_second_shell_uses_make_run_servers_and_asks_before_a_purge(second_shell, make_run, cached):
    app, result = second_shell("cache", "purge", input="n\n")
    assert app.config["SHELF"].redis_url == make_run["REDIS_URL"]
    assert result.exit_code == 1 and "Aborted" in result.output
    assert f"This deletes every cached entry of Shelf in {make_run['REDIS_URL']}" in result.output
    assert f"the embedded server of `make run`, pid {os.getpid()}" in result.output
    assert cached()
    _app, result = second_shell("cache", "purge", "--yes")
    assert result.exit_code == 0 and "deleted" in result.output
    assert not cached()


def test_seed_reset_asks_and_an_empty_answer_keeps_the_catalog(second_shell, make_run, engine):
    product = make_product(engine, make_category(engine))  # the test database, which make_run names
    _app, result = second_shell("seed", "--reset", "--products", "3", input="")
    assert result.exit_code == 1 and "every category, product and review" in result.output
    assert make_run["DATABASE_URL"] in result.output
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT id FROM products").scalars().all() == [product.id]


@pytest.mark.parametrize("state", ["none", "dead pid", "make test"])
def test_without_a_running_make_run_the_cli_refuses_and_names_the_defaults(
    second_shell, tmp_path, database_url, redis_url, cached, state
):
    exports = {"DATABASE_URL": database_url, "REDIS_URL": redis_url}
    if state == "dead pid":
        write_state(tmp_path, 2**22 + 12345, ["bash", "scripts/run.sh"], exports)  # above pid_max
    elif state == "make test":  # make test's servers hold throwaway databases: not a target
        write_state(tmp_path, os.getpid(), ["python", "-m", "pytest"], exports)
    _app, result = second_shell("cache", "purge", "--yes")
    assert result.exit_code == 1
    assert "DATABASE_URL and REDIS_URL are unset and no `make run` is running" in result.output
    assert "postgres@127.0.0.1:5432/shelf" in result.output and "redis://127.0.0.1:6379/0" in result.output
    assert cached()


def test_urls_from_the_environment_are_used_as_given(
    second_shell, monkeypatch, database_url, redis_url, cached
):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", redis_url)  # no make run entry at all: the environment suffices
    _app, result = second_shell("cache", "purge", "--yes")
    assert result.exit_code == 0 and f"{redis_url} (from the environment)" in result.output
    assert not cached()


def test_a_make_run_that_exited_but_was_not_reaped_is_not_live():
    """A zombie still answers kill(0); its services.json entry must not count as a running make run."""
    child = os.fork()
    if child == 0:
        os._exit(0)
    try:
        deadline = time.monotonic() + 5
        while psutil.Process(child).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not local_servers.pid_alive(child)
        assert local_servers.pid_alive(os.getpid())
        assert not local_servers.pid_alive(0)
    finally:
        os.waitpid(child, 0)
