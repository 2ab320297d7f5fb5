"""The admission decision for one ingress record: pure, clock injected.

Only what Kafka-free code can decide lives here; the Faust agent in ``app.py``
turns decisions into records.
"""

from __future__ import annotations

from dataclasses import dataclass

from kinfer.schemas import (
    ErrorCode,
    ErrorReply,
    InferenceRequest,
    InvalidMessage,
    RateLimitStatus,
    decode_request,
    encode,
    headers,
)
from kinfer.schemas.codec import reply_target
from kinfer.schemas.refusals import Refused


@dataclass(frozen=True)
class AdmissionLimits:
    max_prompt_bytes: int
    max_new_tokens: int


@dataclass(frozen=True)
class Admit:
    request: InferenceRequest
    """Valid, within limits and deadline; where it runs is the controller's decision."""


def decide(
    value: bytes | None,
    record_headers: dict[str, str],
    *,
    now_ms: int,
    limits: AdmissionLimits,
) -> Admit | Refused:
    try:
        request = decode_request(value or b"")
    except InvalidMessage as exc:
        return _malformed(value or b"", record_headers, exc.message)
    problem = _over_limits(request, limits)
    if problem:
        reply = _error(request, ErrorCode.INVALID_REQUEST, problem)
        return Refused(reply, request.reply_to, request, problem)
    if request.deadline_ms is not None and request.deadline_ms <= now_ms:
        message = f"deadline passed {now_ms - request.deadline_ms} ms before admission"
        return Refused(_error(request, ErrorCode.DEADLINE_EXCEEDED, message), request.reply_to, request)
    return Admit(request)


def _over_limits(request: InferenceRequest, limits: AdmissionLimits) -> str | None:
    size = request.text_bytes()
    if size > limits.max_prompt_bytes:
        return f"prompt is {size} bytes; this deployment admits at most {limits.max_prompt_bytes}"
    if request.sampling.max_tokens > limits.max_new_tokens:
        return f"max_tokens {request.sampling.max_tokens} is over this deployment's {limits.max_new_tokens}"
    return None


def _error(request: InferenceRequest, code: ErrorCode, message: str) -> ErrorReply:
    return ErrorReply(request_id=request.request_id, code=code, message=message)


def _malformed(value: bytes, record_headers: dict[str, str], reason: str) -> Refused:
    request_id, address = reply_target(value, record_headers)
    reply = ErrorReply(request_id=request_id, code=ErrorCode.INVALID_REQUEST, message=reason)
    return Refused(reply, address, None, reason)


def reserved_tokens(request: InferenceRequest) -> int:
    """Tokens a request reserves at admission: prompt bytes + 1 + max_tokens for each of its
    ``n`` choices. Byte length is exact for byte-level models and an upper bound for BPE ones;
    the worker's real usage settles the difference."""
    return request.text_bytes() + 1 + request.sampling.max_tokens * request.sampling.n


def stamped(
    hdrs: list[tuple[str, bytes]],
    status: RateLimitStatus,
    admitted_ms: float,
    band: tuple[int, float] = (0, 1.0),
) -> list[tuple[str, bytes]]:
    """The record's headers with admission's own stamps: the rate-limit status, when admission
    began deciding it, and the tier's (band, weight) (any a client sent are dropped)."""
    own = [
        (headers.RATE_LIMIT, encode(status)),
        (headers.ADMITTED_MS, f"{admitted_ms:.3f}".encode()),
        (headers.PRIORITY, f"{band[0]}:{band[1]:g}".encode()),
    ]
    return [(k, v) for k, v in hdrs if k not in headers.ADMISSION_STAMPS] + own
