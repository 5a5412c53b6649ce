"""Settings from the environment: defaults, parsing, refusing to run without secrets, the variables
read (exactly the README's table), the key prefix scheme, and gunicorn.conf.py reading the same."""

import re
import runpy
import secrets
from pathlib import Path

import pytest

from api.guards.auth import client_for
from cache.backends.cluster import LazyClusterClient, client_from_url
from catalog.config import DEV_TOKEN, ENV_VARIABLES, ConfigError, Settings, parse_tokens

ROOT = Path(__file__).resolve().parents[2]


def test_development_defaults_work_without_any_variable():
    settings = Settings.from_env({})
    assert settings.api_tokens == {"dev": DEV_TOKEN}
    assert settings.database_url.startswith("postgresql+psycopg2://")


@pytest.mark.parametrize("missing", ["SHELF_API_TOKENS", "SHELF_SECRET_KEY"])
def test_production_refuses_to_start_without_secrets(missing):
    env = {"SHELF_ENV": "production", "SHELF_API_TOKENS": "a:b", "SHELF_SECRET_KEY": "s"}
    del env[missing]
    with pytest.raises(ConfigError, match=missing):
        Settings.from_env(env)


def test_database_url_forms_are_normalized():
    assert (
        Settings.from_env({"DATABASE_URL": "postgres://u@h/db"}).database_url
        == "postgresql+psycopg2://u@h/db"
    )


def test_malformed_numbers_are_refused():
    with pytest.raises(ConfigError, match="SHELF_PORT"):
        Settings.from_env({"SHELF_PORT": "lots"})


def test_tokens_are_named_and_each_one_authenticates():
    tokens = parse_tokens("ci:abc, ops:def,ghi")
    assert tokens == {"ci": "abc", "ops": "def", "token-3": "ghi"}
    assert client_for("Bearer def", tokens) == "ops"
    assert client_for("bearer ghi", tokens) == "token-3"
    assert client_for("Bearer nope", tokens) is None
    assert client_for("Token abc", tokens) is None


REMOVED = {
    "SHELF_CACHE_PREFIX": "other",
    "SHELF_RATE_LIMIT_PREFIX": "other-limits",
    "SHELF_RATE_LIMIT_REDIS_URL": "redis://elsewhere:6379/0",
    "SHELF_CACHE_REDIS_TIMEOUT_MS": "1",
    "SHELF_CACHE_WAIT_MS": "1",
    "SHELF_DB_POOL_SIZE": "99",
    "SHELF_MAX_BODY_BYTES": "1",
    "SHELF_RECOMPUTE_DEBOUNCE_SECONDS": "99",
    "SHELF_WARM_MAX_WAITING": "99",
    "SHELF_WARM_READY_RATIO": "most",
    "SHELF_WARM_READY_SECONDS": "-1",
    "SHELF_EDGE_PURGE_TIMEOUT_MS": "1",
}


def test_variables_that_became_constants_are_no_longer_read():
    assert Settings.from_env(REMOVED) == Settings.from_env({})


def test_the_readme_table_lists_exactly_the_variables_settings_reads():
    source = (ROOT / "catalog" / "config.py").read_text()
    read = set(re.findall(r'env(?:\.get\(|, )"([A-Z_]+)"', source))
    readme = (ROOT / "README.md").read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    table = set(re.findall(r"^\| `([A-Z_]+)`", readme, re.M))
    table |= set(re.findall(r"^\| `[A-Z_]+`, `([A-Z_]+)`", readme, re.M))
    assert read == set(ENV_VARIABLES) == table
    assert len(ENV_VARIABLES) <= 30


def test_one_key_prefix_with_a_namespace_for_the_cache_and_one_for_the_limits():
    settings = Settings.from_env({"SHELF_KEY_PREFIX": "blue"})
    assert (settings.cache_prefix, settings.limits_prefix) == ("blue:cache", "blue:limits")


def test_an_app_keeps_its_entries_and_counters_under_the_prefix(make_app, redis_client, engine):
    prefix = "prefix-" + secrets.token_hex(4)
    client = make_app(key_prefix=prefix, rate_limit_prefix="").test_client()
    assert client.get("/v1/categories").status_code == 200
    keys = {key.decode() for key in redis_client.keys(f"{prefix}:*")}
    assert {key.split(":")[1] for key in keys} == {"cache", "limits"}
    assert any(key.endswith(":body") for key in keys if key.startswith(f"{prefix}:cache:"))


def test_the_pool_holds_a_connection_per_request_thread_and_one_for_the_refresher():
    assert Settings.from_env({"SHELF_WEB_THREADS": "8"}).db_pool_size == 9


def gunicorn_config(monkeypatch, tmp_path, **env: str) -> dict:
    """gunicorn.conf.py's settings, as gunicorn reads them, under ``env``."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # else it makes a folder of its own
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def test_gunicorn_reads_the_same_settings_as_the_app(monkeypatch, tmp_path):
    env = {"SHELF_HOST": "0.0.0.0", "SHELF_PORT": "9123", "SHELF_WEB_WORKERS": "3"}  # noqa: S104
    config = gunicorn_config(monkeypatch, tmp_path, **env, SHELF_WEB_THREADS="6", SHELF_LOG_LEVEL="debug")
    assert config["bind"] == "0.0.0.0:9123"
    assert (config["workers"], config["threads"], config["loglevel"]) == (3, 6, "debug")


def test_gunicorn_refuses_a_malformed_setting_as_the_app_does(monkeypatch, tmp_path):
    with pytest.raises(ConfigError, match="SHELF_WEB_WORKERS"):
        gunicorn_config(monkeypatch, tmp_path, SHELF_WEB_WORKERS="many")


def test_every_redis_client_is_built_by_the_one_factory():
    factory = ROOT / "cache" / "backends" / "cluster.py"
    packages = ("api", "cache", "catalog", "jobs")
    sources = [p for d in packages for p in (ROOT / d).rglob("*.py") if p != factory]
    builders = re.compile(r"\b(?:Redis|RedisCluster)(?:\.from_url)?\(")  # near.py copies a pool: allowed
    assert [str(p.relative_to(ROOT)) for p in sources if builders.search(p.read_text())] == []


def test_the_factory_gives_each_role_its_timeout_and_retry_policy(redis_url):
    patient = client_from_url(redis_url, 2.0)
    failing_fast = client_from_url(redis_url, 0.1, retries=False)
    assert patient.ping() and failing_fast.ping()
    assert patient.connection_pool.connection_kwargs["socket_timeout"] == 2.0
    assert failing_fast.connection_pool.connection_kwargs["socket_connect_timeout"] == 0.1
    assert failing_fast.get_retry()._retries == 0
    assert isinstance(client_from_url("redis+cluster://127.0.0.1:1", 0.1), LazyClusterClient)
    patient.close()
    failing_fast.close()
