"""Cache entries and their wire format: a versioned header plus the raw response body.

An entry is a ready-to-send HTTP body with the metadata needed to serve and refresh it.
Encoded as ``MAGIC | version byte | header length (u32, big endian) | orjson header | body``.
Written by hand rather than pickled (Flask-Caching's default): unpickling bytes from a
shared server is code execution, and an explicit format survives Python upgrades and can
be read by other tools. ``decode`` never raises: anything corrupt, truncated, foreign or
of another version is ``None``, which the region treats as a miss and counts.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

import orjson

MAGIC = b"SHC"
FORMAT_VERSION = 1
CACHEABLE_STATUSES = (200, 404)
MAX_HEADER_BYTES = 4096

_PREFIX = struct.Struct(">3sBI")
_ETAG = re.compile(r'(W/)?"[\x21\x23-\x7e]{1,200}"')
_NUMBER = (int, float)


@dataclass(frozen=True)
class Payload:
    """What a creator computes: the response status, body and entity tag, and the dependency
    tags the entry is registered under (names; ``Region.invalidate`` drops entries by tag)."""

    status: int
    body: bytes
    etag: str
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.status not in CACHEABLE_STATUSES:
            raise ValueError(f"only statuses {CACHEABLE_STATUSES} are cacheable, got {self.status}")
        if not _ETAG.fullmatch(self.etag):
            raise ValueError(f"malformed etag {self.etag!r}")


@dataclass(frozen=True)
class Entry:
    """A cached response. ``generation`` is the scope generation it was computed under."""

    status: int
    body: bytes
    etag: str
    created_at: float
    soft_expires_at: float
    compute_ms: float
    generation: int = 0

    def is_fresh(self, now: float) -> bool:
        return now < self.soft_expires_at


def encode(entry: Entry) -> bytes:
    header = orjson.dumps(
        {
            "status": entry.status,
            "etag": entry.etag,
            "created_at": entry.created_at,
            "soft_expires_at": entry.soft_expires_at,
            "compute_ms": entry.compute_ms,
            "generation": entry.generation,
            "body_length": len(entry.body),
        }
    )
    return _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header)) + header + entry.body


def decode(raw: bytes) -> Entry | None:
    """The entry in ``raw``, or ``None`` if ``raw`` is not a valid entry of this format version."""
    if len(raw) < _PREFIX.size:
        return None
    magic, version, header_length = _PREFIX.unpack_from(raw)
    if magic != MAGIC or version != FORMAT_VERSION or header_length > MAX_HEADER_BYTES:
        return None
    start = _PREFIX.size
    try:
        header = orjson.loads(raw[start : start + header_length])
    except orjson.JSONDecodeError:
        return None
    body = raw[start + header_length :]
    return _entry_from(header, body) if _header_is_valid(header, len(body)) else None


def _header_is_valid(header: object, body_length: int) -> bool:
    if not isinstance(header, dict) or len(header) != 7:
        return False
    numbers = [header.get(name) for name in ("created_at", "soft_expires_at", "compute_ms")]
    return (
        _is_int(header.get("status"))
        and header["status"] in CACHEABLE_STATUSES
        and isinstance(header.get("etag"), str)
        and _ETAG.fullmatch(header["etag"]) is not None
        and all(isinstance(n, _NUMBER) and not isinstance(n, bool) and n >= 0 for n in numbers)
        and _is_int(header.get("generation"))
        and header["generation"] >= 0
        and _is_int(header.get("body_length"))
        and header["body_length"] == body_length
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _entry_from(header: dict, body: bytes) -> Entry:
    return Entry(
        status=header["status"],
        body=body,
        etag=header["etag"],
        created_at=float(header["created_at"]),
        soft_expires_at=float(header["soft_expires_at"]),
        compute_ms=float(header["compute_ms"]),
        generation=header["generation"],
    )
