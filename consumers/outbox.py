"""The records one commit will produce, built from the worker's answers.

Everything here is pure: messages are built and collected; ``worker.py``
produces them inside a Kafka transaction together with the consumed offsets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from kinfer.consumers.engine.runner import GenerationOutput
from kinfer.consumers.return_path import ReturnPath
from kinfer.schemas import (
    Choice,
    DeadLetter,
    ErrorCode,
    ErrorReply,
    InferenceRequest,
    InferenceResult,
    RateLimitStatus,
    ReplyAddress,
    Timings,
    TopicNames,
    Usage,
    WorkerEvent,
    encode,
    headers,
)
from kinfer.schemas.dead_letters import dead_letter
from kinfer.schemas.refusals import Refused
from kinfer.schemas.request_keys import request_key
from kinfer.schemas.signing import REPLY_SIGNATURE, sign_reply


@dataclass(frozen=True)
class Outgoing:
    topic: str
    partition: int | None
    """None: the producer's partitioner picks (keyed)."""
    key: bytes
    value: bytes
    headers: headers.KafkaHeaders


@dataclass(frozen=True)
class Job:
    """A dispatched request the worker owes an answer, with where it came from."""

    request: InferenceRequest
    tokens: int
    """Prompt tokens + max new tokens: its share of the batch budget."""
    source: tuple[str, int]
    offset: int
    consumed_ms: int
    prompt: str
    """What the model continues (chats are rendered with the model's template at triage)."""
    rate_limit: RateLimitStatus | None = None
    """What admission stamped on the record; the result carries it back to the client."""
    admitted_ms: float = 0.0
    """When admission began deciding it (its header stamp; 0: none)."""
    dispatched_ms: float = 0.0
    """When admission produced it (the record's Kafka timestamp; 0: none)."""
    reply_key: str | None = None
    """Signs every answer to it, when admission gave one (``schemas/signing.py``)."""
    band: int = 0
    """Its tier's priority band, as admission stamped it (higher joins first)."""
    weight: float = 1.0
    """Its tier's share of the band's tokens (fair share between tenants)."""

    @property
    def key(self) -> str:
        """Its :func:`~schemas.request_keys.request_key` (tenant-scoped)."""
        return request_key(self.request.tenant, self.request.request_id)


@dataclass
class Outbox:
    names: TopicNames
    region: str
    worker_id: str
    model: str
    """The served model's name, for outcome events."""
    records: list[Outgoing] = field(default_factory=list)
    cacheable: list[tuple[InferenceRequest, InferenceResult]] = field(default_factory=list)
    """Results to offer the response cache once the transaction committed."""
    answered: list[tuple[tuple[str, int], int]] = field(default_factory=list)
    """(partition, offset) of every record this outbox answers."""
    answered_keys: list[str] = field(default_factory=list)
    """:func:`~consumers.dedupe.request_key` of each request whose terminal answer this holds."""

    def __bool__(self) -> bool:
        """Anything to commit: records, or offsets freed by skipped copies."""
        return bool(self.records or self.answered)

    def add(
        self,
        topic: str,
        partition: int | None,
        key: str,
        value: bytes,
        request_id: str,
        reply_key: str | None = None,
    ) -> None:
        """One record; an answer is signed with its request's reply key, when it has one."""
        signature = sign_reply(reply_key, value) if reply_key else None
        hdrs = headers.encode_headers({headers.REQUEST_ID: request_id, REPLY_SIGNATURE: signature})
        self.records.append(Outgoing(topic, partition, key.encode(), value, hdrs))

    def reply(self, address: ReplyAddress, request_id: str, value: bytes, reply_key: str | None) -> None:
        self.add(address.topic, address.partition, request_id, value, request_id, reply_key)

    def result(self, job: Job, result: InferenceResult, event: WorkerEvent) -> None:
        self.reply(job.request.reply_to, job.request.request_id, encode(result), job.reply_key)
        self.answered_keys.append(request_key(job.request.tenant, job.request.request_id))
        # A cache hit gets the limits of its own admission, never these, and no timings.
        self.cacheable.append((job.request, msgspec.structs.replace(result, rate_limit=None, timings=None)))
        self.event(event, job.source[0])
        self.answered.append((job.source, job.offset))

    def error(
        self, job: Job, code: ErrorCode, message: str, now_ms: int, made: GenerationOutput | None = None
    ) -> None:
        """A request taken in is answered with an error instead of a result; ``made``: what it
        generated before that (a cancelled request's text and usage, charged as used)."""
        request = job.request
        usage = _usage(made) if made is not None else None
        text = made.text if made is not None else ""
        reply = ErrorReply(request_id=request.request_id, code=code, message=message, text=text, usage=usage)
        self.reply(request.reply_to, request.request_id, encode(reply), job.reply_key)
        self.answered_keys.append(request_key(request.tenant, request.request_id))
        tokens = (
            {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}
            if usage
            else {}
        )
        self.event(self.outcome(request, code.value, now_ms, **tokens), job.source[0])
        self.answered.append((job.source, job.offset))

    def refusal(
        self,
        decision: Refused,
        source: tuple[str, int, int],
        value: bytes,
        now_ms: int,
        reply_key: str | None = None,
    ) -> None:
        """A record refused before compute: its answer where it can go, its outcome, its dead letter."""
        reply = decision.reply
        if decision.address is not None:
            self.reply(decision.address, reply.request_id, encode(reply), reply_key)
        if decision.request is not None:
            self.event(self.outcome(decision.request, reply.code.value, now_ms), source[0])
        if decision.dead_letter_reason is not None:
            letter = dead_letter(
                value,
                reason=decision.dead_letter_reason,
                code=reply.code,
                source=source,
                request_id=reply.request_id,
                now_ms=now_ms,
            )
            self.dead_letter(letter)
        self.skip(source)

    def skip(self, source: tuple[str, int, int]) -> None:
        """A record that needs no answer from this worker (a copy of one in flight or answered)."""
        topic, partition, offset = source
        self.answered.append(((topic, partition), offset))

    def outcome(self, request: InferenceRequest, status: str, now_ms: int, **fields: object) -> WorkerEvent:
        return WorkerEvent(
            request_id=request.request_id,
            tenant=request.tenant,
            region=self.region,
            model=request.model or "",
            served_model=self.model,
            status=status,  # type: ignore[arg-type]
            worker_id=self.worker_id,
            ts_ms=now_ms,
            **fields,  # type: ignore[arg-type]
        )

    def event(self, event: WorkerEvent, source_topic: str = "") -> None:
        """An outcome, to the events of the admission that routed the record from ``source_topic``."""
        topic = ReturnPath(self.names, self.region).events(source_topic)
        self.add(topic, None, event.tenant, encode(event), event.request_id)

    def dead_letter(self, letter: DeadLetter) -> None:
        rid = letter.request_id or ""
        self.add(self.names.requests_dlq, None, rid, encode(letter), rid)


def result_of(
    job: Job,
    out: GenerationOutput,
    *,
    model: str,
    worker_id: str,
    queue_ms: float,
    compute_ms: float,
    started_ms: float = 0.0,
) -> InferenceResult:
    """The answer to ``job`` from the model's output (every choice of it; ``usage`` counts
    them all); ``started_ms``: when its compute began (on the worker's wall clock)."""
    timings = Timings(
        admitted_ms=job.admitted_ms,
        dispatched_ms=job.dispatched_ms,
        consumed_ms=float(job.consumed_ms),
        started_ms=started_ms,
        finished_ms=started_ms + compute_ms if started_ms else 0.0,
    )
    return InferenceResult(
        request_id=job.request.request_id,
        text=out.text,
        finish_reason=out.finish_reason,
        usage=_usage(out),
        model=model,
        worker_id=worker_id,
        queue_ms=queue_ms,
        compute_ms=compute_ms,
        rate_limit=job.rate_limit,
        timings=timings,
        logprobs=out.logprobs,
        choices=tuple(
            Choice(
                index=i,
                text=c.text,
                finish_reason=c.finish_reason,
                completion_tokens=c.completion_tokens,
                logprobs=c.logprobs,
            )
            for i, c in enumerate(out.more, start=1)
        ),
    )


def _usage(out: GenerationOutput) -> Usage:
    """Every choice's tokens (the prompt counted once)."""
    return Usage(out.prompt_tokens, out.completion_tokens + sum(c.completion_tokens for c in out.more))
