"""Error codes of the wire contract and the root of kinfer's exception tree.

Every package groups its own errors under :class:`KinferError`, so a caller can
catch one root and still read a machine-readable ``code`` and ``retriable``.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Machine-readable reason carried by every error reply."""

    INVALID_REQUEST = "invalid_request"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    INTERNAL = "internal"
    UNAUTHENTICATED = "unauthenticated"
    """The request's tenant is not proven: unsigned, or not signed with the tenant's key
    (schema version 5)."""
    CANCELLED = "cancelled"
    """The request was cancelled by its tenant (or its HTTP client went away) before it was
    answered; the reply carries the text and usage produced until then (schema version 7)."""

    @property
    def retriable(self) -> bool:
        """Whether sending the same request again later may succeed."""
        return self in _RETRIABLE


_RETRIABLE = frozenset({ErrorCode.RATE_LIMITED, ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL})

SERVER_ERRORS: frozenset[str] = frozenset({ErrorCode.INTERNAL, ErrorCode.UNAVAILABLE})
"""Answers that are the server's fault: what breakers count, the error-rate signals and
alerts measure, and the pool drains a worker for. Client errors (invalid_request,
rate_limited, unauthenticated) and deadline_exceeded say nothing about a region's health."""


class KinferError(Exception):
    """Root of every kinfer exception.

    Subclasses set ``code`` (and with it ``retriable``) as class attributes;
    the docstring of each subclass says what the operator should do.
    """

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, *, retry_after_ms: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_ms = retry_after_ms

    @property
    def retriable(self) -> bool:
        return self.code.retriable


class InvalidMessage(KinferError, ValueError):
    """A record or a constructed message breaks the wire contract; fix the sender.

    A ``ValueError`` too, so msgspec reports it as a validation error on decode.
    """

    code = ErrorCode.INVALID_REQUEST
