"""Opaque, tamper-proof keyset cursors.

A cursor carries the sort, the last row's sort key and id, and a fingerprint
of the filters, signed with HMAC-SHA256 under ``SHELF_SECRET_KEY``. Keyset
pages stay stable while rows are inserted (no OFFSET drift); a cursor that
was edited, truncated, or replayed against another query is rejected before
it reaches SQL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import orjson

SIGNATURE_BYTES = 16


class InvalidCursor(ValueError):
    pass


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def fingerprint(query: dict) -> str:
    """A short hash of the parameters a cursor is bound to (everything but cursor and limit)."""
    bound = {k: str(v) for k, v in query.items() if k not in ("cursor", "limit") and v is not None}
    return hashlib.blake2b(orjson.dumps(bound, option=orjson.OPT_SORT_KEYS), digest_size=8).hexdigest()


def encode(secret: str, query: dict, last_key: list) -> str:
    payload = orjson.dumps({"f": fingerprint(query), "k": last_key})
    signature = hmac.new(secret.encode(), payload, hashlib.sha256).digest()[:SIGNATURE_BYTES]
    return f"{_b64(payload)}.{_b64(signature)}"


def decode(secret: str, query: dict, cursor: str) -> list:
    """The last key the cursor carries, or InvalidCursor."""
    try:
        payload_part, signature_part = cursor.split(".")
        payload, signature = _unb64(payload_part), _unb64(signature_part)
    except (ValueError, TypeError) as exc:
        raise InvalidCursor("malformed cursor") from exc
    expected = hmac.new(secret.encode(), payload, hashlib.sha256).digest()[:SIGNATURE_BYTES]
    if not hmac.compare_digest(signature, expected):
        raise InvalidCursor("cursor signature does not match")
    data = orjson.loads(payload)
    if not isinstance(data, dict) or data.get("f") != fingerprint(query):
        raise InvalidCursor("cursor belongs to a different query")
    key = data.get("k")
    if not isinstance(key, list) or len(key) != 2:
        raise InvalidCursor("malformed cursor")
    return key
