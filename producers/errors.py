"""Exceptions the client raises: one per wire error code, plus client-side failures."""

from __future__ import annotations

from kinfer.schemas import ErrorCode, ErrorReply, KinferError, RateLimitStatus, Usage


class RequestFailed(KinferError):
    """The pipeline answered with an error; ``code`` and ``retry_after_ms`` say what to do."""

    def __init__(
        self,
        message: str,
        *,
        request_id: str = "",
        retry_after_ms: int | None = None,
        rate_limit: RateLimitStatus | None = None,
    ) -> None:
        super().__init__(message, retry_after_ms=retry_after_ms)
        self.request_id = request_id
        self.rate_limit = rate_limit
        """With :class:`RateLimited`: the tenant's limits and how far they are spent."""


class InvalidRequest(RequestFailed):
    """The request breaks the contract or the model's limits: fix it, do not retry."""

    code = ErrorCode.INVALID_REQUEST


class RateLimited(RequestFailed):
    """The tenant is over its limit: retry after ``retry_after_ms``."""

    code = ErrorCode.RATE_LIMITED


class Unavailable(RequestFailed):
    """No healthy capacity (breaker open, Kafka down): retry later or elsewhere."""

    code = ErrorCode.UNAVAILABLE


class DeadlineExceeded(RequestFailed):
    """The deadline passed before an answer: the pipeline gave up, or the client stopped waiting."""

    code = ErrorCode.DEADLINE_EXCEEDED


class InternalError(RequestFailed):
    """A bug or an unexpected failure in the pipeline: report it; retrying may help."""

    code = ErrorCode.INTERNAL


class Unauthenticated(RequestFailed):
    """The tenant could not be proven: the gateway's answer to a missing or unknown API key. On
    Kafka a secured pipeline withholds this refusal (the sender sees its deadline; the DLQ says
    why): check the tenant's signing key (``KINFER_CLIENT__SIGNING_KEYS``) and clock."""

    code = ErrorCode.UNAUTHENTICATED


class Cancelled(RequestFailed):
    """The request was cancelled (``AsyncClient.cancel``, or its HTTP client went away) before
    it finished: ``text`` and ``usage`` hold what it made until then (the tokens charged)."""

    code = ErrorCode.CANCELLED

    def __init__(
        self, message: str, *, request_id: str = "", text: str = "", usage: Usage | None = None
    ) -> None:
        super().__init__(message, request_id=request_id)
        self.text = text
        self.usage = usage


class ClientClosed(RequestFailed):
    """The client was closed while the call waited; the request may still be answered."""

    code = ErrorCode.UNAVAILABLE


BY_CODE: dict[ErrorCode, type[RequestFailed]] = {
    cls.code: cls
    for cls in (
        InvalidRequest,
        RateLimited,
        Unavailable,
        DeadlineExceeded,
        InternalError,
        Unauthenticated,
        Cancelled,
    )
}
"""The exception the SDK raises for each error code."""


def from_reply(reply: ErrorReply) -> RequestFailed:
    """The typed exception for an error reply."""
    if reply.code is ErrorCode.CANCELLED:
        return Cancelled(reply.message, request_id=reply.request_id, text=reply.text, usage=reply.usage)
    cls = BY_CODE.get(reply.code, InternalError)
    return cls(
        reply.message,
        request_id=reply.request_id,
        retry_after_ms=reply.retry_after_ms,
        rate_limit=reply.rate_limit,
    )
