"""The entry wire format: round trip, and every kind of bad value decodes to None."""

from __future__ import annotations

import pickle
import struct

import orjson
import pytest

from cache.entry import FORMAT_VERSION, MAGIC, Entry, Payload, decode, encode

ENTRY = Entry(200, b'{"id": 7}', '"7"', 1000.0, 1300.0, 12.5, 3)


def _with_header(**changes: object) -> bytes:
    raw = encode(ENTRY)
    header = orjson.loads(raw[8 : 8 + struct.unpack(">I", raw[4:8])[0]])
    header.update(changes)
    raw = orjson.dumps(header)
    return struct.pack(">3sBI", MAGIC, FORMAT_VERSION, len(raw)) + raw + ENTRY.body


def test_round_trip_keeps_every_field():
    assert decode(encode(ENTRY)) == ENTRY


def test_negative_entry_with_empty_body_round_trips():
    entry = Entry(404, b"", '"e"', 1.0, 31.0, 0.0)
    assert decode(encode(entry)) == entry


def test_encoding_is_the_versioned_format_not_pickle():
    raw = encode(ENTRY)
    assert raw.startswith(MAGIC + bytes([FORMAT_VERSION]))
    assert raw.endswith(ENTRY.body)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"SHC",
        b"garbage that is long enough",
        pickle.dumps({"status": 200, "body": b"x"}),
        encode(ENTRY)[:-1],
        encode(ENTRY) + b"x",
        encode(ENTRY)[:20],
        MAGIC + bytes([FORMAT_VERSION + 1]) + encode(ENTRY)[4:],
        b"XYZ" + encode(ENTRY)[3:],
        struct.pack(">3sBI", MAGIC, FORMAT_VERSION, 10**6) + b"{}",
        struct.pack(">3sBI", MAGIC, FORMAT_VERSION, 5) + b"{nope",
        struct.pack(">3sBI", MAGIC, FORMAT_VERSION, 2) + b"[]",
    ],
    ids=lambda raw: repr(raw[:12]),
)
def test_corrupt_truncated_or_foreign_values_decode_to_none(raw):
    assert decode(raw) is None


@pytest.mark.parametrize(
    "changes",
    [
        {"status": 500},
        {"status": "200"},
        {"status": True},
        {"etag": "no-quotes"},
        {"etag": '"has space"'},
        {"etag": 7},
        {"created_at": "yesterday"},
        {"soft_expires_at": -1},
        {"compute_ms": None},
        {"generation": 1.5},
        {"generation": -1},
        {"body_length": 1},
        {"extra": 1},
    ],
)
def test_header_fields_are_validated(changes):
    assert decode(_with_header(**changes)) is None


def test_unchanged_header_helper_decodes():
    assert decode(_with_header()) == ENTRY


@pytest.mark.parametrize("status", [200, 404])
def test_payload_accepts_cacheable_statuses(status):
    assert Payload(status, b"", '"e"').status == status


@pytest.mark.parametrize("status, etag", [(500, '"x"'), (200, "x"), (200, 'W/"ok" trailing')])
def test_payload_rejects_uncacheable_status_or_malformed_etag(status, etag):
    with pytest.raises(ValueError):
        Payload(status, b"", etag)


def test_weak_etags_are_accepted():
    assert decode(encode(Entry(200, b"", 'W/"v1"', 0.0, 1.0, 0.0))).etag == 'W/"v1"'
