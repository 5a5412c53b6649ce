"""Client IP behind proxies: X-Forwarded-For counts only from the configured number of hops."""

from __future__ import annotations

import pytest

from catalog.config import ConfigError, Settings
from tests.conftest import log_records

PEER = {"REMOTE_ADDR": "192.0.2.10"}


def read(client, forwarded_for: str):
    return client.get("/v1/categories", headers={"X-Forwarded-For": forwarded_for}, environ_base=PEER)


def test_without_trusted_proxies_x_forwarded_for_cannot_pick_a_budget(make_app):
    client = make_app(rate_limit_reads="1/minute").test_client()
    assert read(client, "198.51.100.1").status_code == 200
    # A different claimed address is still the same peer, so the same (spent) budget.
    assert read(client, "198.51.100.2").status_code == 429


def test_one_trusted_proxy_gives_each_forwarded_client_its_budget(make_app):
    client = make_app(rate_limit_reads="1/minute", trusted_proxies=1).test_client()
    assert read(client, "198.51.100.1").status_code == 200
    assert read(client, "198.51.100.2").status_code == 200
    assert read(client, "198.51.100.1").status_code == 429


def test_only_the_trusted_hops_are_believed(make_app):
    client = make_app(rate_limit_reads="1/minute", trusted_proxies=1).test_client()
    assert read(client, "198.51.100.1").status_code == 200
    # The client prepended a forged address; the one our proxy appended is still the client.
    assert read(client, "203.0.113.66, 198.51.100.1").status_code == 429


def test_the_request_log_shows_the_forwarded_client(make_app, log_output):
    client = make_app(trusted_proxies=1).test_client()
    client.get(
        "/healthz", headers={"X-Forwarded-For": "198.51.100.7", "X-Request-ID": "fwd-1"}, environ_base=PEER
    )
    line = next(line for line in log_records(log_output()) if line.get("request_id") == "fwd-1")
    assert line["remote_addr"] == "198.51.100.7"


def test_trusted_proxies_is_read_from_the_environment_and_must_not_be_negative(make_app):
    assert Settings.from_env({"SHELF_TRUSTED_PROXIES": "2"}).trusted_proxies == 2
    assert Settings.from_env({}).trusted_proxies == 0
    with pytest.raises(ConfigError, match="SHELF_TRUSTED_PROXIES"):
        make_app(trusted_proxies=-1)
