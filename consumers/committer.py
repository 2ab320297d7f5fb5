"""Commits a worker's answers: replies, outcome events and the consumed offsets they free,
in one Kafka transaction (the role quix-streams' ``Checkpoint`` plays).

Offsets advance only to the first record not yet answered; the records answered ahead of it
are named in the offset's metadata (``batching/offsets.py``). A commit that fails is
aborted and the worker re-reads from the committed offsets; a producer a failure left
unusable is replaced, and so is one fenced because its transaction outlived
``transaction.timeout.ms`` (the coordinator aborted it and bumped the epoch: KIP-588); only a
producer fenced by another live instance stops the process.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog
from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, Message, TopicPartition

from kinfer.consumers import metrics
from kinfer.consumers.batching.offsets import Offsets, OffsetTracker, decode_ahead, encode_ahead
from kinfer.consumers.clients import WorkerClients
from kinfer.consumers.outbox import Outbox

log = structlog.get_logger(__name__)

FENCED = frozenset({KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH})
"""Another instance took this worker's transactional id over, or the coordinator aborted a
transaction that ran past its timeout (a hung broker; the broker answers both alike)."""


REWIND_TRIES = 9
"""Times the committed offsets are asked for after an abort, ``REWIND_TIMEOUT_S`` each: a
hung group coordinator is replaced once the controller fences its broker (seconds)."""
REWIND_TIMEOUT_S = 10.0


class ResumePointUnknown(RuntimeError):
    """After an aborted transaction the group coordinator never said where to re-read from:
    the worker cannot go on without risking a lost or twice-answered request, so it exits and
    lets its partitions move on (its open work is uncommitted: nothing is lost)."""


class TransactionalCommitter:
    def __init__(
        self,
        clients: WorkerClients,
        offsets: OffsetTracker,
        on_failed_delivery: Callable[[str, int, KafkaError], None],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clients = clients
        self.offsets = offsets
        self.on_failed_delivery = on_failed_delivery
        self.clock = clock

    def prepare(self, outbox: Outbox) -> Offsets:
        """The offsets ``outbox`` frees (on the worker's thread, which owns the tracker)."""
        for tp, offset in outbox.answered:
            self.offsets.answered(tp, offset)
        return self.offsets.committable()

    def transact(self, outbox: Outbox, offsets: Offsets, group: object) -> bool:
        """True when the outbox's records and the ``offsets`` it frees committed (then
        :meth:`OffsetTracker.mark_committed` them); False when the transaction aborted: then
        everything unanswered must be forgotten and re-read (:meth:`rewind`). Raises only when
        fenced by another instance. It touches only the producers, so it may run on a thread of its own (see
        ``commit_thread.py``); ``group`` is the consumer's group metadata, read by the worker's
        thread (the consumer is blocked for other threads while a rebalance callback runs)."""
        chunks = self.clients.chunk_producer
        if chunks.flush(10):  # a stream's chunks must precede its result
            log.warning("worker.chunks_unflushed", pending=len(chunks))
        producer = self.clients.producer
        started = self.clock()
        try:
            producer.begin_transaction()
            for out in outbox.records:
                # -1 is librdkafka's "partitioner picks" (keyed records: events, dead letters).
                partition = -1 if out.partition is None else out.partition
                producer.produce(
                    out.topic, out.value, out.key, partition, headers=out.headers, on_delivery=self._delivered
                )
                producer.poll(0)
            if offsets:
                producer.send_offsets_to_transaction(
                    [TopicPartition(t, p, at.offset, encode_ahead(at)) for (t, p), at in offsets.items()],
                    group,
                    30,
                )
            producer.commit_transaction(60)
        except KafkaException as exc:
            self._abort(exc, self.clock() - started)
            return False
        metrics.TRANSACTION_SECONDS.observe(self.clock() - started)
        metrics.TRANSACTION_RECORDS.observe(len(outbox.records))
        return True

    def rewind(self) -> None:
        """Seek every assigned partition back to its committed offset, whose metadata says
        which records after it are answered already (asking again while the group coordinator
        does not answer: a hung broker; see ``REWIND_TRIES``)."""
        consumer = self.clients.consumer
        for _ in range(REWIND_TRIES):
            try:
                committed = consumer.committed(consumer.assignment(), REWIND_TIMEOUT_S)
                break
            except KafkaException as exc:
                log.warning("worker.rewind_retry", error=str(exc.args[0]))
        else:
            raise ResumePointUnknown(f"no committed offsets after {REWIND_TRIES} tries")
        self.inherit(committed)
        for tp in committed:
            offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            consumer.seek(TopicPartition(tp.topic, tp.partition, offset))

    def inherit(self, committed: list[TopicPartition]) -> None:
        """Each partition's committed position: the records an earlier owner (or this worker,
        before an abort) answered ahead of it are skipped when read again."""
        for tp in committed:
            if tp.offset >= 0:
                self.offsets.inherit((tp.topic, tp.partition), decode_ahead(tp.offset, tp.metadata))

    def _delivered(self, error: KafkaError | None, record: Message) -> None:
        if error is None:
            return
        topic, partition = record.topic(), record.partition()
        log.warning("worker.delivery_failed", topic=topic, partition=partition, error=error.str())
        if topic is not None and partition is not None:
            self.on_failed_delivery(topic, partition, error)

    def _abort(self, exc: KafkaException, elapsed_s: float) -> None:
        error = exc.args[0]
        metrics.ABORTED_TRANSACTIONS.inc()
        log.error("worker.transaction_failed", error=str(error), retriable=error.retriable())
        if error.code() in FENCED and not self._expired(elapsed_s):
            raise exc  # a newer instance owns this transactional id: this process must not go on
        if error.fatal() or not self._aborted():
            self.clients.replace_producer()

    def _expired(self, elapsed_s: float) -> bool:
        """Whether the transaction outlived ``transaction.timeout.ms``: then the coordinator
        aborted it on its own and bumped the epoch, and a fencing error says only that (a newer
        producer with this id goes on; the consumer group's generation still refuses offsets
        another member owns now)."""
        timeout_s = self.clients.config.transaction_timeout_ms / 1000
        if elapsed_s < timeout_s:
            return False
        log.warning("worker.transaction_expired", elapsed_s=round(elapsed_s, 1), timeout_s=timeout_s)
        return True

    def _aborted(self) -> bool:
        try:
            self.clients.producer.abort_transaction(30)
        except KafkaException as exc:
            log.error("worker.abort_failed", error=str(exc.args[0]))
            return False
        return True
