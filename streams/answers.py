"""Admission's own answers: a refusal of a valid request, or the rejection of a record it
could not take (with its dead letter). Pure, and counted by tier and code."""

from __future__ import annotations

from kinfer.schemas import ErrorCode, ErrorReply, InferenceRequest, RateLimitStatus
from kinfer.schemas.refusals import Refused
from kinfer.streams import fallbacks, metrics
from kinfer.streams.effects import Answer, Effect
from kinfer.streams.limits.tiers import TenantPolicy


def refuse(
    request: InferenceRequest,
    policy: TenantPolicy,
    code: ErrorCode,
    message: str,
    retry_after_ms: int | None = None,
    rate_limit: RateLimitStatus | None = None,
) -> list[Effect]:
    metrics.REJECTED.labels(policy.tier.name, code.value).inc()
    reply = ErrorReply(
        request_id=request.request_id,
        code=code,
        message=message,
        retry_after_ms=retry_after_ms,
        rate_limit=rate_limit,
    )
    return [Answer(request.reply_to, reply)]


def reject(decision: Refused, tier: str, value: bytes, source: fallbacks.Source, now_ms: int) -> list[Effect]:
    """The answer where the record names an address, and its dead letter where it must be kept."""
    reply = decision.reply
    metrics.REJECTED.labels(tier, reply.code.value).inc()
    effects: list[Effect] = []
    if decision.address is not None:
        effects.append(Answer(decision.address, reply))
    if decision.dead_letter_reason is not None:
        reason = decision.dead_letter_reason
        effects.append(fallbacks.letter(value, reply.code, reason, reply.request_id, source, now_ms))
    return effects
