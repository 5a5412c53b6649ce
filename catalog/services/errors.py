"""Domain errors raised by service functions.

Services know nothing of HTTP; ``api.errors`` maps each of these to a status
code and a problem+json body. ``field`` names the input field at fault, when
there is one, so the client sees which field to fix.
"""

from __future__ import annotations


class DomainError(Exception):
    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


class NotFound(DomainError):
    """The resource does not exist (or is not visible)."""


class Conflict(DomainError):
    """The change would break a uniqueness or reference rule (duplicate sku, category in use)."""


class PreconditionFailed(DomainError):
    """The client's If-Match did not match the current representation."""


class InvalidInput(DomainError):
    """Well-formed input that the current state makes invalid (unknown category, too-deep tree)."""


class Busy(DomainError):
    """Enough of this work already waits; the same request later will be taken."""

    def __init__(self, message: str, *, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after
