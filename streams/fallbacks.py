"""What admission does instead when a decision or one of its effects fails: pure functions
of the record, so the agent always has one answer (or dead letter) to give."""

from __future__ import annotations

from kinfer.schemas import ErrorCode, ErrorReply, headers
from kinfer.schemas.codec import reply_target
from kinfer.schemas.dead_letters import dead_letter
from kinfer.schemas.request_keys import request_key
from kinfer.schemas.signing import REPLY_KEY
from kinfer.streams.effects import Answer, Effect, Letter, Remember, Withdraw

Source = tuple[str, int, int]


def letter(
    value: bytes, code: ErrorCode, reason: str, request_id: str, source: Source, now_ms: int
) -> Letter:
    return Letter(
        dead_letter(value, reason=reason, code=code, source=source, request_id=request_id, now_ms=now_ms)
    )


def failed(
    value: bytes | None, hdrs: list[tuple[str, bytes]], source: Source, exc: Exception, now_ms: int
) -> list[Effect]:
    """A decision that raised (a bug): ``internal`` where an address can be read, and the
    record kept as a dead letter either way."""
    request_id, address = reply_target(value or b"", headers.decode_headers(hdrs))
    message = f"admission failed: {type(exc).__name__}: {str(exc)[:200]}"
    reply = ErrorReply(request_id=request_id, code=ErrorCode.INTERNAL, message=message)
    answers: list[Effect] = [Answer(address, reply)] if address is not None else []
    return [*answers, letter(value or b"", ErrorCode.INTERNAL, message, request_id, source, now_ms)]


def undeliverable(effect: Effect, why: str, value: bytes | None, source: Source, now_ms: int) -> list[Effect]:
    """Instead of an effect that could not be carried out: an answer becomes a dead letter; a
    forward becomes an ``unavailable`` answer (the client may retry) and one, withdrawn
    first: the timed-out forward may still land, and its worker must then drop it."""
    if isinstance(effect, Letter | Remember | Withdraw):
        return []
    if isinstance(effect, Answer):
        return [letter(value or b"", ErrorCode.UNAVAILABLE, why, effect.reply.request_id, source, now_ms)]
    hdrs = headers.decode_headers(effect.headers)
    request_id, address = reply_target(effect.value, hdrs)  # the forward carries the request
    reply = ErrorReply(request_id=request_id, code=ErrorCode.UNAVAILABLE, message=why, retry_after_ms=1000)
    signing = hdrs.get(REPLY_KEY)  # the forward's reply key: the client takes only signed answers
    answers: list[Effect] = [Answer(address, reply, signing)] if address is not None else []
    withdraw = Withdraw(request_key(effect.key.decode(), request_id))  # a forward's key is its tenant
    return [withdraw, *answers, letter(value or b"", ErrorCode.UNAVAILABLE, why, request_id, source, now_ms)]
