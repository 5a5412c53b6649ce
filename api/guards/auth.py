"""Bearer-token auth for writes.

Tokens come from ``SHELF_API_TOKENS`` (named, so one can be revoked alone).
Every configured token is compared in constant time, and all of them are
always compared, so response timing says nothing about how close a guess was.
"""

from __future__ import annotations

import hmac
from functools import wraps

from flask import current_app, g, request

from ..errors import problem

READS = frozenset({"GET", "HEAD"})

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="shelf"'}


def client_for(header: str | None, tokens: dict[str, str]) -> str | None:
    """The name of the token ``header`` carries, or None."""
    scheme, _, presented = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return None
    presented_bytes = presented.strip().encode()
    match = None
    for name, token in tokens.items():
        if hmac.compare_digest(presented_bytes, token.encode()):
            match = name
    return match


def require_token(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        client = client_for(request.headers.get("Authorization"), current_app.config["SHELF"].api_tokens)
        if client is None:
            needed_for = "reads of /v1/admin" if request.method in READS else "writes"
            raise problem(401, f"a valid bearer token is required for {needed_for}", headers=CHALLENGE)
        g.client = client
        return view(*args, **kwargs)

    return wrapper
