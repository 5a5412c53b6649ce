"""Settings from the environment: defaults, parsing, and refusing to run without secrets."""

import pytest

from api.guards.auth import client_for
from catalog.config import DEV_TOKEN, ConfigError, Settings, parse_tokens


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
    with pytest.raises(ConfigError, match="SHELF_MAX_BODY_BYTES"):
        Settings.from_env({"SHELF_MAX_BODY_BYTES": "lots"})


def test_tokens_are_named_and_each_one_authenticates():
    tokens = parse_tokens("ci:abc, ops:def,ghi")
    assert tokens == {"ci": "abc", "ops": "def", "token-3": "ghi"}
    assert client_for("Bearer def", tokens) == "ops"
    assert client_for("bearer ghi", tokens) == "token-3"
    assert client_for("Bearer nope", tokens) is None
    assert client_for("Token abc", tokens) is None
