"""Each request id is decided once: admission's marks in Redis.

A decision is marked once its effects are carried out (``Remember`` after them); an answer of
admission's own is marked pending first, so a crash between sending it and marking it is
settled by looking for the answer in its reply partition (the ``AnswerLedger``) rather than by
answering twice. Without Redis nothing is marked and a redelivered record is decided again.
"""

from __future__ import annotations

from typing import Literal

import structlog

from kinfer.schemas import InferenceRequest, ReplyAddress
from kinfer.schemas.request_keys import request_key
from kinfer.streams import metrics
from kinfer.streams.effects import Answer, Effect, PendingAnswer, Remember, Withdraw
from kinfer.streams.seams import AnswerLedger
from kinfer.streams.shared_state import SharedState

log = structlog.get_logger(__name__)

Mark = Literal["done"] | PendingAnswer | None
"""A request id's decision mark in Redis (see ``SharedState.decision``)."""


class DecisionMarks:
    def __init__(self, state: SharedState, ledger: AnswerLedger) -> None:
        self.state = state
        self.ledger = ledger

    async def read(self, request: InferenceRequest) -> Mark:
        return await self.state.decision(request)

    async def already_decided(self, request: InferenceRequest, mark: Mark) -> bool:
        """Whether this request id was decided (or answered by a worker) already, from its
        ``mark``: a Faust redelivery after a crash, or a client sending an id again. It is
        dropped: its one answer is the first decision's. Unknown while Redis is away (then
        decided again)."""
        if mark is None:
            return False
        key = request_key(request.tenant, request.request_id)
        if mark != "done":  # admission was answering it when it stopped: did the answer go out?
            address = ReplyAddress(mark.topic, mark.partition)
            if not await self.ledger.was_answered(address, request.request_id, mark.since_ms):
                return False  # it never went out: decide again
            await self.state.remember(key)
        metrics.DUPLICATES.inc()
        log.info("admission.duplicate_dropped", request_id=request.request_id, tenant=request.tenant)
        return True

    async def remember(self, effect: Remember) -> None:
        """Carry out a :class:`Remember` (best effort: without Redis, a redelivery is decided again)."""
        await self.state.remember(effect.key, effect.pending)

    async def withdraw(self, effect: Withdraw) -> None:
        """Carry out a :class:`Withdraw` (best effort: without Redis, a late forward is answered twice)."""
        await self.state.withdraw(effect.key)


def remembered(request: InferenceRequest, effects: list[Effect], now: int) -> list[Effect]:
    """``effects``, then the decision's mark; an answer of admission's own is marked pending
    before it is sent, so a crash between sending it and marking it cannot answer twice."""
    key = request_key(request.tenant, request.request_id)
    answers = [e for e in effects if isinstance(e, Answer)]
    if not answers:
        return [*effects, Remember(key)]
    first = effects.index(answers[0])
    address = answers[0].address
    pending = Remember(key, PendingAnswer(address.topic, address.partition, now))
    return [*effects[:first], pending, *effects[first:], Remember(key)]
