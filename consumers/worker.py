"""The inference worker: Kafka consume -> triage -> batched generation -> transactional replies.

Replies, outcome events and the consumed offsets are committed in one Kafka
transaction (consume-transform-produce). A worker killed mid-batch leaves an
open transaction that the broker aborts; the group hands its partitions to
another member, which answers the same requests once for read_committed
readers (the reply clients are).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from consumers import metrics
from consumers.batching.budget import split_by_budget
from consumers.config import WorkerConfig
from consumers.engine import GenerationInput, ModelRunner
from consumers.result_cache import ResultCache
from consumers.triage import Refused, Runnable, triage
from schemas import (
    DeadLetter,
    ErrorCode,
    ErrorReply,
    InferenceRequest,
    InferenceResult,
    ReplyAddress,
    TokenChunk,
    TopicNames,
    Usage,
    WorkerEvent,
    encode,
    headers,
)

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class _Outgoing:
    topic: str
    partition: int | None
    """None: the producer's partitioner picks (keyed)."""
    key: bytes
    value: bytes
    headers: headers.KafkaHeaders


@dataclass
class _Outbox:
    """Records of one batch, produced inside its transaction."""

    records: list[_Outgoing] = field(default_factory=list)
    cacheable: list[tuple[InferenceRequest, InferenceResult]] = field(default_factory=list)
    """Results to offer the response cache once the transaction committed."""

    def add(self, topic: str, partition: int | None, key: str, value: bytes, request_id: str) -> None:
        hdrs = headers.encode_headers({headers.REQUEST_ID: request_id})
        self.records.append(_Outgoing(topic, partition, key.encode(), value, hdrs))


def _coordinates(record: Message) -> tuple[str, int, int]:
    """Topic, partition and offset of a consumed (never a produced) record."""
    topic, partition, offset = record.topic(), record.partition(), record.offset()
    assert topic is not None and partition is not None and offset is not None
    return topic, partition, offset


class InferenceWorker:
    def __init__(
        self,
        config: WorkerConfig,
        runner: ModelRunner,
        *,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.config = config
        self.runner = runner
        self.topics = TopicNames(config.topic_prefix)
        self.clock_ms = clock_ms
        self._stop = threading.Event()
        self.cache = (
            ResultCache(config.redis_url, config.topic_prefix, config.cache_ttl_s)
            if config.redis_url
            else None
        )
        self.consumer = Consumer(
            {
                "bootstrap.servers": config.bootstrap_servers,
                "group.id": config.consumer_group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "partition.assignment.strategy": "cooperative-sticky",
                "client.id": config.worker_id,
                "session.timeout.ms": config.session_timeout_ms,
                "heartbeat.interval.ms": max(500, config.session_timeout_ms // 5),
            }
        )
        self.producer = Producer(
            {
                "bootstrap.servers": config.bootstrap_servers,
                "transactional.id": f"{config.consumer_group}.{config.worker_id}",
                "transaction.timeout.ms": config.transaction_timeout_ms,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 2,
                "client.id": config.worker_id,
            }
        )
        # Token chunks of streaming requests: outside the transactions (see _chunk_sink).
        self.chunk_producer = Producer(
            {
                "bootstrap.servers": config.bootstrap_servers,
                "enable.idempotence": True,
                "linger.ms": 0,
                "client.id": f"{config.worker_id}-chunks",
            }
        )

    def stop(self) -> None:
        """Finish the current batch, then leave the group (SIGTERM does this)."""
        self._stop.set()

    def run(self) -> None:
        self.producer.init_transactions(30)
        source = self.topics.dispatch(self.config.region)
        self.consumer.subscribe([source])
        weights = getattr(self.runner, "parameter_bytes", lambda: 0)()
        metrics.PARAMETER_BYTES.set(weights)
        log.info(
            "worker.started",
            topic=source,
            group=self.config.consumer_group,
            model=self.runner.name,
            parameter_bytes=weights,
        )
        try:
            while not self._stop.is_set():
                records = [r for r in self._next_records() if self._usable(r)]
                if records:
                    self._process(records)
        finally:
            self.consumer.close()
            self.producer.flush(10)
            self.chunk_producer.flush(10)
            log.info("worker.stopped", worker=self.config.worker_id)

    def _next_records(self) -> list[Message]:
        """Wait (idle) for a first record, then up to max_wait for more, or until the batch is full."""
        first = self.consumer.poll(0.2)
        if first is None:
            return []
        more = self.config.max_batch_requests - 1
        rest = self.consumer.consume(more, self.config.max_wait_ms / 1000) if more else []
        return [first, *rest]

    def _usable(self, record: Message) -> bool:
        err = record.error()
        if err is None:
            return True
        if err.code() != KafkaError._PARTITION_EOF:
            log.warning("worker.consume_error", error=str(err))
        return False

    def _process(self, records: list[Message]) -> None:
        outbox = _Outbox()
        now = self.clock_ms()
        runnable: list[tuple[Runnable, Message]] = []
        for record in records:
            decision = triage(
                record.value(),
                headers.decode_headers(record.headers()),
                now_ms=now,
                count_tokens=self.runner.count_tokens,
                max_context=self.runner.max_context,
            )
            if isinstance(decision, Refused):
                self._refuse(decision, record, outbox)
            else:
                runnable.append((decision, record))
        # Earliest deadline first; requests without one go last, in arrival order.
        runnable.sort(key=lambda pair: pair[0].request.deadline_ms or 2**63)
        for batch in split_by_budget(
            runnable,
            lambda pair: pair[0].tokens,
            max_tokens=self.config.max_batch_tokens,
            max_items=self.config.max_batch_requests,
        ):
            self._run_batch([item for item, _ in batch], outbox)
        self._commit(records, outbox)

    def _run_batch(self, batch: list[Runnable], outbox: _Outbox) -> None:
        batch_id = uuid.uuid4().hex[:12]
        started = time.monotonic()
        start_ms = self.clock_ms()
        try:
            outputs = self.runner.generate(
                [GenerationInput(r.request.prompt, r.request.sampling) for r in batch],
                on_text=self._chunk_sink(batch) if any(r.request.stream for r in batch) else None,
            )
        except Exception as exc:
            log.exception("worker.model_failed", batch_id=batch_id, size=len(batch))
            for item in batch:
                reply = ErrorReply(
                    request_id=item.request.request_id,
                    code=ErrorCode.INTERNAL,
                    message=f"model {self.runner.name} failed: {exc}",
                )
                self._reply(item.request.reply_to, item.request.request_id, encode(reply), outbox)
                self._event(
                    item.request, ErrorCode.INTERNAL, outbox, batch_id=batch_id, batch_size=len(batch)
                )
            return
        compute_ms = (time.monotonic() - started) * 1000
        metrics.BATCH_SIZE.observe(len(batch))
        metrics.BATCH_TOKENS.observe(sum(r.tokens for r in batch))
        metrics.COMPUTE_SECONDS.observe(compute_ms / 1000)
        for item, out in zip(batch, outputs, strict=True):
            req = item.request
            queue_ms = float(max(0, start_ms - req.created_ms)) if req.created_ms else 0.0
            metrics.QUEUE_SECONDS.observe(queue_ms / 1000)
            metrics.GENERATED_TOKENS.inc(out.completion_tokens)
            result = InferenceResult(
                request_id=req.request_id,
                text=out.text,
                finish_reason=out.finish_reason,
                usage=Usage(out.prompt_tokens, out.completion_tokens),
                model=self.runner.name,
                worker_id=self.config.worker_id,
                queue_ms=queue_ms,
                compute_ms=compute_ms,
            )
            self._reply(req.reply_to, req.request_id, encode(result), outbox)
            outbox.cacheable.append((req, result))
            self._event(
                req,
                "ok",
                outbox,
                prompt_tokens=out.prompt_tokens,
                completion_tokens=out.completion_tokens,
                queue_ms=queue_ms,
                compute_ms=compute_ms,
                batch_id=batch_id,
                batch_size=len(batch),
            )

    def _chunk_sink(self, batch: list[Runnable]) -> Callable[[int, str], None]:
        """Token chunks go out at once, outside the batch's transaction: a read_committed
        client would otherwise see them only with the final result. At-least-once; the
        chunk index lets the client drop a repeat."""
        counters = [0] * len(batch)

        def sink(row: int, text: str) -> None:
            req = batch[row].request
            if not req.stream:
                return
            chunk = TokenChunk(request_id=req.request_id, index=counters[row], text=text)
            counters[row] += 1
            self.chunk_producer.produce(
                req.reply_to.topic,
                value=encode(chunk),
                key=req.request_id.encode(),
                partition=req.reply_to.partition,
            )
            self.chunk_producer.poll(0)

        return sink

    def _refuse(self, decision: Refused, record: Message, outbox: _Outbox) -> None:
        reply = decision.reply
        if decision.address is not None:
            self._reply(decision.address, reply.request_id, encode(reply), outbox)
        if decision.request is not None:
            self._event(decision.request, reply.code, outbox)
        else:
            metrics.ANSWERS.labels(reply.code.value).inc()
        if decision.dead_letter_reason is not None:
            topic, partition, offset = _coordinates(record)
            letter = DeadLetter(
                code=ErrorCode.INVALID_REQUEST,
                reason=decision.dead_letter_reason,
                source_topic=topic,
                source_partition=partition,
                source_offset=offset,
                original=record.value() or b"",
                request_id=reply.request_id or None,
                ts_ms=self.clock_ms(),
            )
            outbox.add(self.topics.requests_dlq, None, reply.request_id, encode(letter), reply.request_id)
        log.info("worker.refused", request_id=reply.request_id, code=reply.code.value, reason=reply.message)

    def _reply(self, address: ReplyAddress, request_id: str, value: bytes, outbox: _Outbox) -> None:
        outbox.add(address.topic, address.partition, request_id, value, request_id)

    def _event(
        self, req: InferenceRequest, status: str | ErrorCode, outbox: _Outbox, **fields: object
    ) -> None:
        status_text = status.value if isinstance(status, ErrorCode) else status
        metrics.ANSWERS.labels(status_text).inc()
        event = WorkerEvent(
            request_id=req.request_id,
            tenant=req.tenant,
            region=self.config.region,
            model=req.model,
            status=status_text,  # type: ignore[arg-type]
            worker_id=self.config.worker_id,
            ts_ms=self.clock_ms(),
            **fields,  # type: ignore[arg-type]
        )
        outbox.add(self.topics.events, None, req.tenant, encode(event), req.request_id)

    def _commit(self, records: list[Message], outbox: _Outbox) -> None:
        """Replies, events and offsets in one transaction; on failure, rewind and redo."""
        offsets: dict[tuple[str, int], int] = {}
        for record in records:
            topic, partition, offset = _coordinates(record)
            offsets[topic, partition] = max(offsets.get((topic, partition), 0), offset + 1)
        # A stream's chunks must be on the log before its final result.
        if self.chunk_producer.flush(10):
            log.warning("worker.chunks_unflushed", pending=len(self.chunk_producer))
        try:
            self.producer.begin_transaction()
            for out in outbox.records:
                if out.partition is None:
                    self.producer.produce(out.topic, value=out.value, key=out.key, headers=out.headers)
                else:
                    self.producer.produce(
                        out.topic, value=out.value, key=out.key, partition=out.partition, headers=out.headers
                    )
                self.producer.poll(0)
            self.producer.send_offsets_to_transaction(
                [TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                self.consumer.consumer_group_metadata(),
                30,
            )
            self.producer.commit_transaction(60)
        except KafkaException as exc:
            self._recover(exc, offsets)
            return
        if self.cache is not None:
            self.cache.store(outbox.cacheable)

    def _recover(self, exc: KafkaException, offsets: dict[tuple[str, int], int]) -> None:
        error = exc.args[0]
        metrics.ABORTED_TRANSACTIONS.inc()
        log.error("worker.transaction_failed", error=str(error), retriable=error.retriable())
        if error.fatal():
            raise exc  # fenced by a newer instance: this process must not go on
        self.producer.abort_transaction(30)
        # Rewind to what was last committed, so the batch is processed again.
        committed = self.consumer.committed([TopicPartition(t, p) for (t, p) in offsets], 10)
        for tp in committed:
            self.consumer.seek(
                TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
            )
