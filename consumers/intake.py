"""What a poll's records become before any compute: a job to run, a refusal to answer
(and perhaps dead-letter), or a copy of a request already in flight or answered.

Triage decides each record alone (``triage.py``); intake adds what needs the cluster and
Redis: the reply address checked against metadata, and one de-duplication lookup for the
whole poll. Nothing a record holds can make intake raise: a failure is that record's
``internal`` answer.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import msgspec
import structlog

from kinfer.consumers.dedupe import RequestDeduplicator
from kinfer.consumers.engine import ModelRunner
from kinfer.consumers.outbox import Job
from kinfer.consumers.reply_topics import ReplyTopics
from kinfer.consumers.return_path import ReturnPath
from kinfer.consumers.triage import Runnable, triage
from kinfer.schemas import ErrorCode, ErrorReply, headers
from kinfer.schemas.codec import rate_limit_header, reply_target
from kinfer.schemas.refusals import Refused
from kinfer.schemas.request_keys import request_key
from kinfer.schemas.signing import REPLY_KEY

log = structlog.get_logger(__name__)

Source = tuple[str, int, int]
"""Topic, partition and offset of a consumed record."""


class Record(Protocol):
    """What intake reads of a consumed record (confluent-kafka's ``Message``)."""

    def value(self) -> bytes | None: ...
    def headers(self) -> dict[str, str | bytes | None] | list[tuple[str, str | bytes | None]] | None: ...
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def timestamp(self) -> tuple[int, int]: ...


@dataclass(frozen=True)
class Refusal:
    decision: Refused
    source: Source
    value: bytes
    reply_key: str | None = None
    """The request's reply key, when admission gave one (``schemas/signing.py``)."""


@dataclass(frozen=True)
class Duplicate:
    request_id: str
    source: Source
    in_flight: bool
    """The original is still being worked on here (else: answered already, here or elsewhere)."""


Intaken = Job | Refusal | Duplicate


def admitted_ms(values: dict[str, str]) -> float:
    """When admission began deciding the record (its stamp), or 0 when absent or unreadable:
    it only times the request, so a bad one never fails it."""
    try:
        value = float(values.get(headers.ADMITTED_MS, "0"))
    except ValueError:
        return 0.0
    return value if math.isfinite(value) and value > 0 else 0.0


def source_of(record: Record) -> Source:
    topic, partition, offset = record.topic(), record.partition(), record.offset()
    assert topic is not None and partition is not None and offset is not None
    return topic, partition, offset


class Intake:
    def __init__(
        self,
        runner: ModelRunner,
        reply_topics: ReplyTopics,
        dedupe: RequestDeduplicator,
        returns: ReturnPath | None = None,
    ) -> None:
        self.runner = runner
        self.reply_topics = reply_topics
        self.dedupe = dedupe
        # One cluster: every record is this region's own; answers go where they name.
        self.returns = returns or ReturnPath(reply_topics.names, region="")

    def take_in(self, records: Sequence[Record], now_ms: int) -> list[Intaken]:
        """Each record's fate, in order (one Redis round trip for the poll's answered ids)."""
        decided: list[tuple[Record, Runnable | Refused, dict[str, str]]] = []
        for record in records:
            record_headers = headers.decode_headers(record.headers())
            source_topic = record.topic() or ""
            decision = self.decide(record.value(), record_headers, now_ms, source_topic)
            decided.append((record, self.routed(decision, source_topic), record_headers))
        runnable = [d for _, d, _ in decided if isinstance(d, Runnable)]
        answered = self.dedupe.seen([request_key(d.request.tenant, d.request.request_id) for d in runnable])
        out: list[Intaken] = []
        for record, decision, record_headers in decided:
            source = source_of(record)
            if isinstance(decision, Refused):
                reply_key = record_headers.get(REPLY_KEY)
                out.append(Refusal(decision, source, record.value() or b"", reply_key))
                continue
            key = request_key(decision.request.tenant, decision.request.request_id)
            if not self.dedupe.take(key, answered):  # a second copy of a dispatched request
                out.append(Duplicate(decision.request.request_id, source, self.dedupe.in_flight(key)))
                continue
            topic, partition, offset = source
            band, weight = headers.priority(record_headers)
            out.append(
                Job(
                    decision.request,
                    decision.tokens,
                    (topic, partition),
                    offset,
                    now_ms,
                    decision.prompt,
                    rate_limit_header(record_headers),
                    admitted_ms=admitted_ms(record_headers),
                    dispatched_ms=float(record.timestamp()[1]),
                    reply_key=record_headers.get(REPLY_KEY),
                    band=band,
                    weight=weight,
                )
            )
        return out

    def routed(self, decision: Runnable | Refused, source_topic: str) -> Runnable | Refused:
        """``decision`` answering where ``self.returns`` says (a peer's client: its return topic)."""
        if isinstance(decision, Runnable):
            address = self.returns.address(decision.request.reply_to, source_topic)
            request = msgspec.structs.replace(decision.request, reply_to=address)
            return dataclasses.replace(decision, request=request)
        if decision.address is None:
            return decision
        return dataclasses.replace(decision, address=self.returns.address(decision.address, source_topic))

    def decide(
        self, value: bytes | None, record_headers: dict[str, str], now_ms: int, source_topic: str = ""
    ) -> Runnable | Refused:
        """:func:`triage`, and the reply address checked; whatever goes wrong costs this record only."""
        try:
            decision = triage(
                value,
                record_headers,
                now_ms=now_ms,
                count_tokens=self.runner.count_tokens,
                max_context=self.runner.max_context,
                render_chat=self.runner.render_chat,
                served_model=self.runner.name,
                sampling_problem=self.runner.sampling_problem,
            )
            address = decision.request.reply_to if isinstance(decision, Runnable) else decision.address
            via = self.returns.origin(source_topic)
            why = self.reply_topics.why_unanswerable(address, via) if address is not None else None
        except Exception as exc:  # a bug or a poison record in triage: this record's answer is internal
            log.exception("worker.triage_failed")
            request_id, address = reply_target(value or b"", record_headers)
            reason = f"triage failed: {type(exc).__name__}: {str(exc)[:200]}"
            reply = ErrorReply(request_id=request_id, code=ErrorCode.INTERNAL, message=reason)
            return Refused(reply, address, None, reason)
        if why is None:
            return decision
        if isinstance(decision, Runnable):  # nothing can be answered there: a dead letter only
            request_id = decision.request.request_id
            reply = ErrorReply(request_id=request_id, code=ErrorCode.INVALID_REQUEST, message=why)
            return Refused(reply, None, decision.request, why)
        return dataclasses.replace(
            decision, address=None, dead_letter_reason=decision.dead_letter_reason or why
        )
