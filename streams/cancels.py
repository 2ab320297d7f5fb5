"""Admission's half of cancelling a request: prove the canceller, mark the request, answer.

A cancel travels as a record on the ingress topic, keyed by tenant like the request it names,
so admission reads it after that request (one partition, one order) and proves it the same
way (a secured pipeline wants it signed with the tenant's key). What it does then depends on
where the request is:

- dispatched or still in the delay queue: marked ``cancel`` in Redis and the request key
  published on the cancels channel. The worker holding it stops it before its next decode
  step and answers it; a worker that takes it in later reads the mark first; the delay
  queue's pump, reaching it, answers it ``cancelled`` instead of re-admitting it (entries
  leave that queue only once answered, so a crash loses nothing there either);
- answered, unknown, or cancelled before: nothing changes.

Why a Redis mark, not a compacted ``cancels`` topic: the canceller cannot know which worker
holds the request (partitions move), and a worker that gets the request after a rebalance
must still see the cancel. A mark keyed by the request is found by whoever holds it, now or
later, with no per-worker subscription state to rebuild; the pub/sub message only spares the
workers asking Redis every step. While Redis is away a cancel is acknowledged ``refused``
with ``unavailable`` and the request runs to its end.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from kinfer.schemas import (
    CancelAck,
    CancelStatus,
    ErrorCode,
    ErrorReply,
    InferenceRequest,
    InvalidMessage,
    ReplyAddress,
    Usage,
)
from kinfer.schemas.codec import decode_cancel, reply_target
from kinfer.schemas.request_keys import (
    MARKER_TTL_S,
    answered_key,
    cancelled_key,
    cancels_channel,
    decided_key,
    request_key,
)
from kinfer.streams import metrics
from kinfer.streams.effects import Answer, Effect
from kinfer.streams.fallbacks import Source, letter
from kinfer.streams.identity import Authenticator, Misaddressed, Unproven, proof_required
from kinfer.streams.limits.reservations import reservation_key
from kinfer.streams.seams import wall_ms

log = structlog.get_logger(__name__)

CANCEL: bytes = b"cancel"

_MARK = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 'already' end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'finished' end
redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
if redis.call('EXISTS', KEYS[3]) == 1 or redis.call('EXISTS', KEYS[4]) == 1 then return 'marked' end
return 'unknown'
"""
"""One round trip, atomic: whether it was cancelled before or answered; else mark it, and say
whether admission has seen the request (decided, or holding tokens for it). An id not seen
is marked too: its request may be in admission's hands this instant (its ``decided`` mark is
written after its forward), and one that arrives later is answered ``cancelled``."""


class CancelDesk:
    def __init__(
        self,
        redis: Redis,
        prefix: str,
        authenticator: Authenticator | None,
        clock_ms: Callable[[], int] = wall_ms,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.authenticator = authenticator
        self.clock_ms = clock_ms
        self._mark = redis.register_script(_MARK)

    async def cancel(self, value: bytes, decoded: dict[str, str], source: Source) -> list[Effect]:
        """The effects of one cancel record: exactly one acknowledgement, where it can go; none
        for a cancel that did not prove its tenant (a dead letter instead, see ``identity``)."""
        try:
            cancel = decode_cancel(value)
        except InvalidMessage as exc:
            request_id, address = reply_target(value, decoded)
            if proof_required(self.authenticator):
                why = exc.message
                return _withheld(value, request_id, ErrorCode.INVALID_REQUEST, why, source, self.clock_ms())
            return _refused(request_id, address, ErrorCode.INVALID_REQUEST, exc.message)
        reply_key = None
        if self.authenticator is not None:
            proof = await self.authenticator.check(cancel, value, decoded)
            if isinstance(proof, Unproven):
                return _withheld(value, cancel.request_id, proof.code, proof.why, source, self.clock_ms())
            if isinstance(proof, Misaddressed):
                code = ErrorCode.INVALID_REQUEST
                return _refused(cancel.request_id, proof.own, code, proof.why, proof.reply_key)
            reply_key = proof.reply_key
        key = request_key(cancel.tenant, cancel.request_id)
        marks = [
            cancelled_key(self.prefix, key),
            answered_key(self.prefix, key),
            decided_key(self.prefix, key),
            reservation_key(self.prefix, cancel.tenant, cancel.request_id),
        ]
        try:
            found = await self._mark(keys=marks, args=[CANCEL, MARKER_TTL_S])
            outcome = found.decode() if isinstance(found, bytes) else str(found)
            if outcome in ("marked", "unknown"):
                await self.redis.publish(cancels_channel(self.prefix), key)
        except (OSError, RedisError) as exc:
            log.warning("admission.cancel_unavailable", request_id=cancel.request_id, error=str(exc))
            why = "cancels need Redis, which does not answer now; the request runs on"
            return _refused(cancel.request_id, cancel.reply_to, ErrorCode.UNAVAILABLE, why, reply_key)
        status, message = _STATUS[outcome]
        metrics.CANCELS.labels(status).inc()
        log.info("admission.cancel", request_id=cancel.request_id, tenant=cancel.tenant, status=status)
        ack = CancelAck(request_id=cancel.request_id, status=status, message=message)
        return [Answer(cancel.reply_to, ack, reply_key)]

    async def cancelled(self, tenant: str, request_id: str) -> bool:
        """Whether a request was cancelled (the delay queue asks before re-admitting it)."""
        try:
            return bool(await self.redis.exists(cancelled_key(self.prefix, request_key(tenant, request_id))))
        except (OSError, RedisError):
            return False  # re-admitted: a worker that can read the mark still stops it


def queued_cancel(request: InferenceRequest, reply_key: str | None) -> list[Effect]:
    """The answer to a request cancelled while it waited in the delay queue: nothing was made."""
    reply = ErrorReply(
        request_id=request.request_id,
        code=ErrorCode.CANCELLED,
        message="cancelled while waiting in admission's delay queue; nothing was generated",
        usage=Usage(0, 0),
    )
    metrics.CANCELLED.labels("queued").inc()
    metrics.CANCEL_SAVED_TOKENS.labels("queued").inc(request.sampling.max_tokens * request.sampling.n)
    return [Answer(request.reply_to, reply, reply_key)]


def _withheld(
    value: bytes, request_id: str, code: ErrorCode, why: str, source: Source, now_ms: int
) -> list[Effect]:
    """A cancel that did not prove its tenant: kept as a dead letter, acknowledged nowhere."""
    metrics.CANCELS.labels("refused").inc()
    metrics.REFUSALS_WITHHELD.labels(code.value).inc()
    return [letter(value, code, why, request_id, source, now_ms)]


def _refused(
    request_id: str,
    address: ReplyAddress | None,
    code: ErrorCode,
    why: str,
    reply_key: str | None = None,
) -> list[Effect]:
    metrics.CANCELS.labels("refused").inc()
    if address is None:
        return []
    ack = CancelAck(request_id=request_id, status="refused", code=code, message=why)
    return [Answer(address, ack, reply_key)]


_STATUS: dict[str, tuple[CancelStatus, str]] = {
    "marked": (
        "cancelling",
        "the request is stopped at its worker's next step; its answer says what was made",
    ),
    "already": ("already_cancelled", "the request was cancelled before; nothing changed"),
    "finished": ("finished", "the request was answered already; nothing changed"),
    "unknown": (
        "unknown",
        "no request with this id from this tenant was seen; one sent with it within the "
        "idempotency window is answered cancelled",
    ),
}
