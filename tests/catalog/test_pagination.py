"""Keyset cursors (catalog.pagination): they carry the last key back, and nothing else gets through."""

from __future__ import annotations

import secrets

import pytest

from catalog import pagination

SECRET = "secret-" + secrets.token_hex(8)
QUERY = {"category": "shoes", "sort": "price", "limit": 20, "cursor": None, "brand": None}


def test_a_cursor_gives_back_the_key_it_was_made_with():
    cursor = pagination.encode(SECRET, QUERY, ["12.50", 7])
    assert pagination.decode(SECRET, QUERY, cursor) == ["12.50", 7]


def test_the_page_size_and_the_cursor_itself_are_not_part_of_the_query_it_is_bound_to():
    cursor = pagination.encode(SECRET, QUERY, ["12.50", 7])
    assert pagination.decode(SECRET, {**QUERY, "limit": 50, "cursor": cursor}, cursor) == ["12.50", 7]


@pytest.mark.parametrize("change", [{"sort": "-price"}, {"category": "hats"}, {"brand": "acme"}])
def test_a_cursor_replayed_against_another_query_is_refused(change):
    cursor = pagination.encode(SECRET, QUERY, ["12.50", 7])
    with pytest.raises(pagination.InvalidCursor, match="different query"):
        pagination.decode(SECRET, {**QUERY, **change}, cursor)


def test_a_cursor_signed_under_another_secret_is_refused():
    cursor = pagination.encode("another-" + SECRET, QUERY, ["12.50", 7])
    with pytest.raises(pagination.InvalidCursor, match="signature"):
        pagination.decode(SECRET, QUERY, cursor)


def test_an_edited_payload_is_refused():
    payload, signature = pagination.encode(SECRET, QUERY, ["12.50", 7]).split(".")
    forged = pagination.encode("x", QUERY, ["0.01", 1]).split(".")[0]
    assert forged != payload
    with pytest.raises(pagination.InvalidCursor, match="signature"):
        pagination.decode(SECRET, QUERY, f"{forged}.{signature}")


@pytest.mark.parametrize("cursor", ["", "no-dot", "a.b.c", "!!!.???", "YQ.YQ"])
def test_malformed_cursors_are_refused(cursor):
    with pytest.raises(pagination.InvalidCursor):
        pagination.decode(SECRET, QUERY, cursor)


@pytest.mark.parametrize("key", [["only-one"], "not-a-list", ["a", 1, 2]])
def test_a_signed_cursor_whose_key_is_not_a_pair_is_refused(key):
    cursor = pagination.encode(SECRET, QUERY, key)
    with pytest.raises(pagination.InvalidCursor, match="malformed"):
        pagination.decode(SECRET, QUERY, cursor)
