"""SDK errors as OpenAI-style HTTP errors: status, body, and rate-limit headers."""

from __future__ import annotations

import math

from fastapi.responses import JSONResponse

from kinfer.producers.errors import RequestFailed
from kinfer.producers.gateway.headers import duration, rate_limit_headers
from kinfer.schemas import ErrorCode

HTTP_STATUS: dict[ErrorCode, tuple[int, str]] = {
    # code -> (HTTP status, OpenAI error type)
    ErrorCode.INVALID_REQUEST: (400, "invalid_request_error"),
    ErrorCode.RATE_LIMITED: (429, "rate_limit_exceeded"),
    ErrorCode.UNAVAILABLE: (503, "service_unavailable"),
    ErrorCode.DEADLINE_EXCEEDED: (504, "timeout"),
    ErrorCode.INTERNAL: (500, "server_error"),
    ErrorCode.UNAUTHENTICATED: (401, "invalid_api_key"),
    ErrorCode.CANCELLED: (499, "cancelled"),
}


def error_response(
    status: int,
    message: str,
    err_type: str,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    param: str | None = None,
) -> JSONResponse:
    """OpenAI's error body; ``param``: the request parameter at fault, when one is."""
    body = {"error": {"message": message, "type": err_type, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def from_failure(exc: RequestFailed) -> JSONResponse:
    status, err_type = HTTP_STATUS.get(exc.code, (500, "server_error"))
    headers = rate_limit_headers(exc.rate_limit)
    if exc.retry_after_ms is not None:
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_ms / 1000)))
        if exc.code is ErrorCode.RATE_LIMITED and exc.rate_limit is None:
            # Refused without bucket figures (Redis down, delay queue unreachable).
            headers["x-ratelimit-reset-requests"] = duration(exc.retry_after_ms)
            headers["x-ratelimit-remaining-requests"] = "0"
    return error_response(status, exc.message, err_type, exc.code.value, headers)
