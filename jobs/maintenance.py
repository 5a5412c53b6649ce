"""Housekeeping jobs."""

from __future__ import annotations

from . import context


def drain_outbox() -> dict:
    """Apply cache invalidations still in the outbox (left by a crashed process or a Redis outage)."""
    return {"applied": context.app().extensions["shelf.outbox"].drain()}
