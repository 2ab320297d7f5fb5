"""What an admission decision asks the Faust agent to do. Plain data: the
controller decides, the agent produces records."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import msgspec

from kinfer.schemas import CancelAck, DeadLetter, ErrorReply, InferenceResult, ReplyAddress, TokenChunk


@dataclass(frozen=True)
class Forward:
    topic: str
    partition: int
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    region: str


@dataclass(frozen=True)
class Answer:
    address: ReplyAddress
    reply: ErrorReply | InferenceResult | TokenChunk | CancelAck
    reply_key: str | None = None
    """Signs the answer record, when the request was proven (``schemas/signing.py``)."""


def signed(effects: list[Effect], reply_key: str | None) -> list[Effect]:
    """``effects`` with their answers signed with ``reply_key``."""
    if reply_key is None:
        return effects
    return [dataclasses.replace(e, reply_key=reply_key) if isinstance(e, Answer) else e for e in effects]


@dataclass(frozen=True)
class Letter:
    letter: DeadLetter


class PendingAnswer(msgspec.Struct, frozen=True):
    """An answer admission is about to send: where, and from when (see ``answer_ledger.py``)."""

    topic: str
    partition: int
    since_ms: int


@dataclass(frozen=True)
class Remember:
    """Mark a request decided, once the effects before it are carried out: a copy of it
    redelivered after a crash (or sent again with the same id) is then dropped. Before an
    answer of admission's own, the mark is ``pending`` first."""

    key: str
    """Its :func:`~schemas.request_keys.request_key`."""
    pending: PendingAnswer | None = None


@dataclass(frozen=True)
class Withdraw:
    """Mark a forwarded request answered, so that a worker drops it. A forward that timed
    out may still be appended when a hung broker resumes (the producer keeps its batch),
    and admission has answered it ``unavailable`` by then: without this mark a worker
    would answer it a second time."""

    key: str
    """Its :func:`~schemas.request_keys.request_key`."""


Effect = Forward | Answer | Letter | Remember | Withdraw
