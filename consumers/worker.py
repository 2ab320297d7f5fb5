"""The inference worker: consume -> triage -> continuous batch -> transactional replies.

Requests join the running batch between decode steps and leave when they
finish (iteration-level batching), so short requests never wait behind long
ones. Answers, outcome events and the consumed offsets are committed in Kafka
transactions (consume-transform-produce); offsets only advance up to the first
record not yet answered. A worker killed mid-batch leaves an open transaction
the broker aborts; its partitions move to another member, which answers the
same requests once for read_committed readers (the reply clients are).
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from typing import TypeVar

import redis
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
from redis.backoff import NoBackoff
from redis.retry import Retry

from consumers import metrics
from consumers.batching.offsets import OffsetTracker
from consumers.batching.waiting import WaitingQueue
from consumers.config import WorkerConfig
from consumers.dedupe import RequestDeduplicator
from consumers.engine import GenerationInput, GenerationOutput, ModelRunner
from consumers.outbox import Job, Outbox, result_of
from consumers.pool.registry import PoolRegistry
from consumers.redis_gate import RedisGate
from consumers.reply_topics import ReplyTopics
from consumers.result_cache import ResultCache
from consumers.telemetry import DeviceSampler
from consumers.triage import Refused, Runnable, triage
from schemas import (
    ErrorCode,
    ErrorReply,
    InferenceRequest,
    SamplingParams,
    TokenChunk,
    TopicNames,
    encode,
    headers,
)
from schemas.codec import rate_limit_header, reply_target
from schemas.dead_letters import dead_letter
from schemas.kafka_client import client_config
from schemas.request_keys import request_key
from schemas.serving import WorkerHeartbeat

log = structlog.get_logger(__name__)

_FENCED = frozenset({KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH})
"""Another instance took this worker's transactional id over."""
T = TypeVar("T")

COMMIT_INTERVAL_S = 0.02
"""While the batch runs, answers are committed at most this often (one transaction each)."""


def _coordinates(record: Message) -> tuple[str, int, int]:
    """Topic, partition and offset of a consumed (never a produced) record."""
    topic, partition, offset = record.topic(), record.partition(), record.offset()
    assert topic is not None and partition is not None and offset is not None
    return topic, partition, offset


def _dedupe_key(request: InferenceRequest) -> str:
    return request_key(request.tenant, request.request_id)


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
        # One client and one gate for the cache, de-duplication and the pool: all best effort,
        # and while Redis is away all skipped at once (one retry, no backoff: fail fast).
        self.redis_gate = RedisGate()
        redis_client = (
            redis.Redis.from_url(
                config.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 1)
            )
            if config.redis_url
            else None
        )
        self.cache = (
            ResultCache(redis_client, config.topic_prefix, config.cache_ttl_s, self.redis_gate)
            if redis_client is not None
            else None
        )
        self.dedupe = RequestDeduplicator(redis_client, config.topic_prefix, gate=self.redis_gate)
        self.reply_topics = ReplyTopics(self.topics, self._partitions_of)
        self.running = runner.batch()
        self.waiting: WaitingQueue[Job] = WaitingQueue(
            max_tokens=config.max_batch_tokens,
            max_rows=config.max_batch_requests,
            max_wait_ms=config.max_wait_ms,
        )
        self.offsets = OffsetTracker()
        self.outbox = self._new_outbox()
        self._last_commit = 0.0
        self._started_ms: dict[str, int] = {}
        self._chunk_counts: dict[str, int] = {}
        self.pool = (
            PoolRegistry(config.redis_url, config.topic_prefix, config.region) if config.redis_url else None
        )
        self._last_heartbeat = 0.0
        self._last_state = ""
        self._last_busy_ms = 0
        self.telemetry = DeviceSampler(config.device)
        self._recent_queue_ms = 0

    # Kafka clients connect on first use (run() uses them at once): building a worker
    # connects nowhere, so its loop can be tested without a broker.
    @functools.cached_property
    def consumer(self) -> Consumer:
        return self._new_consumer()

    @functools.cached_property
    def producer(self) -> Producer:
        return Producer(
            client_config(
                self.config.bootstrap_servers,
                {
                    "transactional.id": f"{self.config.consumer_group}.{self.config.worker_id}",
                    "transaction.timeout.ms": self.config.transaction_timeout_ms,
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": 2,
                    "client.id": self.config.worker_id,
                },
            )
        )

    @functools.cached_property
    def chunk_producer(self) -> Producer:
        """Token chunks of streaming requests: outside the transactions (see _on_text)."""
        return Producer(
            client_config(
                self.config.bootstrap_servers,
                {
                    "enable.idempotence": True,
                    "linger.ms": 0,
                    "client.id": f"{self.config.worker_id}-chunks",
                },
            )
        )

    def _new_consumer(self) -> Consumer:
        return Consumer(
            client_config(
                self.config.bootstrap_servers,
                {
                    "group.id": self.config.consumer_group,
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                    "isolation.level": "read_committed",
                    "partition.assignment.strategy": "cooperative-sticky",
                    "client.id": self.config.worker_id,
                    "session.timeout.ms": self.config.session_timeout_ms,
                    "heartbeat.interval.ms": max(500, self.config.session_timeout_ms // 5),
                },
            )
        )

    def _partitions_of(self, topic: str) -> int | None:
        """Partition count of a reply topic, from the consumer's metadata (None: no such topic)."""
        meta = self.consumer.list_topics(topic, timeout=2).topics.get(topic)
        return len(meta.partitions) if meta is not None and meta.error is None and meta.partitions else None

    def _new_outbox(self) -> Outbox:
        return Outbox(self.topics, self.config.region, self.config.worker_id, self.runner.name)

    def stop(self) -> None:
        """Finish what is running, answer it, then leave the group (SIGTERM does this)."""
        self._stop.set()

    # -- the loop ----------------------------------------------------------------------

    def run(self, *, standby: bool = False) -> None:
        """Serve until stopped. ``standby``: load and warm the model, then wait to be
        promoted by the pool controller before joining the group; a released worker
        goes back to standby with its model still loaded."""
        self.producer.init_transactions(30)
        weights = getattr(self.runner, "parameter_bytes", lambda: 0)()
        metrics.PARAMETER_BYTES.set(weights)
        log.info("worker.ready", model=self.runner.name, parameter_bytes=weights, standby=standby)
        waiting_for_promotion = standby
        try:
            if standby:
                self._warm_up()
            while not self._stop.is_set():
                if waiting_for_promotion and not self._promoted():
                    continue
                released = self._serve()
                waiting_for_promotion = released
        finally:
            self._pool_call(lambda pool: pool.leave(self.config.worker_id))
            for producer in (self.producer, self.chunk_producer):
                try:
                    producer.flush(10)
                except KafkaException as exc:  # a fatal producer has nothing left to deliver
                    log.warning("worker.flush_failed", error=str(exc.args[0]))
            log.info("worker.stopped", worker=self.config.worker_id)

    def _serve(self) -> bool:
        """Consume and answer until stopped or released; True when released (back to standby)."""
        source = self.topics.dispatch(self.config.region)
        self.consumer.subscribe([source], on_revoke=self._on_revoke, on_lost=self._on_revoke)
        log.info("worker.started", topic=source, group=self.config.consumer_group, model=self.runner.name)
        released = False
        try:
            while not self._stop.is_set() and not released:
                self._turn()
                released = self._pool_tick("active") == "release"
            self._drain()
        finally:
            self.consumer.close()
        if released:
            log.info("worker.released", worker=self.config.worker_id)
            del self.consumer  # a fresh one joins the group at the next promotion
        return released

    def _warm_up(self) -> None:
        """Run the model once so a promotion pays for no lazy allocation or kernel load."""
        started = time.monotonic()
        self.runner.generate([GenerationInput("warm up", SamplingParams(max_tokens=4))])
        log.info("worker.warm", seconds=round(time.monotonic() - started, 3))

    def _promoted(self) -> bool:
        """Standby: heartbeat and wait (1 s at most) for a promotion."""
        return self._pool_tick("standby", wait_s=1.0) == "promote"

    def _pool_tick(self, state: str, wait_s: float = 0.0) -> str | None:
        """Heartbeat (at most once a second unless waiting or the state just changed: a
        promotion is visible at once) and take the next pool command."""
        if self.pool is None:
            return None
        now = time.monotonic()
        if wait_s == 0.0 and now - self._last_heartbeat < 1.0 and state == self._last_state:
            return None
        self._last_heartbeat, self._last_state = now, state
        busy = self._last_busy_ms if state == "active" else 0

        queue_ms = self._queue_delay_ms() if state == "active" else 0

        beat = WorkerHeartbeat(
            state="active" if state == "active" else "standby",
            last_seen_ms=self.clock_ms(),
            last_busy_ms=busy,
            queue_ms=queue_ms,
            model=self.runner.name,
        )

        def tick(pool: PoolRegistry) -> str | None:
            pool.heartbeat(self.config.worker_id, beat)
            return pool.next_command(self.config.worker_id, wait_s)

        command = self._pool_call(tick)
        if command is None and wait_s:
            time.sleep(0 if self.redis_gate.up else wait_s)
        return command

    def _queue_delay_ms(self) -> int:
        """Longest wait for a batch slot since the last heartbeat, or of a request still waiting."""
        waited, self._recent_queue_ms = self._recent_queue_ms, 0
        return max(waited, self.waiting.oldest_wait_ms(self.clock_ms()))

    def _pool_call(self, fn: Callable[[PoolRegistry], T]) -> T | None:
        pool = self.pool
        return self.redis_gate.call(lambda: fn(pool), None) if pool is not None else None

    def _turn(self) -> None:
        """One iteration: take in records, let waiting requests join, decode one step, commit."""
        records = self._poll()
        if records:
            self._take_in(records)
            self._last_busy_ms = self.clock_ms()
        now = self.clock_ms()
        for job in self.waiting.expired(now):
            self._answer_late(job, now)
        self._join(now)
        if len(self.running):
            self._step()
            self._last_busy_ms = self.clock_ms()
        if self.outbox and (
            not len(self.running) or time.monotonic() - self._last_commit >= COMMIT_INTERVAL_S
        ):
            self._commit()

    def _poll(self) -> list[Message]:
        """Never wait while sequences are decoding; when idle, wait for work (or the batch wait)."""
        if len(self.running):
            timeout = 0.0
        elif len(self.waiting):
            timeout = min(0.2, self.waiting.wait_ms(self.clock_ms()) / 1000)
        else:
            timeout = 0.2
        records = self.consumer.consume(self.config.max_batch_requests, timeout)
        return [r for r in records if self._usable(r)]

    def _usable(self, record: Message) -> bool:
        err = record.error()
        if err is None:
            return True
        if err.code() != KafkaError._PARTITION_EOF:
            log.warning("worker.consume_error", error=str(err))
        return False

    def _drain(self) -> None:
        """On stop: finish running sequences and commit; waiting ones go back uncommitted."""
        while len(self.running):
            self._step()
        if self.outbox:
            self._commit()

    # -- intake --------------------------------------------------------------------------

    def _take_in(self, records: list[Message]) -> None:
        """Triage a poll's records, then queue the runnable ones that are not copies of a
        request in flight or answered (one Redis round trip for the whole poll)."""
        now = self.clock_ms()
        runnable: list[tuple[Message, Runnable, dict[str, str]]] = []
        for record in records:
            topic, partition, offset = _coordinates(record)
            self.offsets.consumed((topic, partition), offset)
            record_headers = headers.decode_headers(record.headers())
            decision = self._triage(record.value(), record_headers, now)
            if isinstance(decision, Refused):
                self._refuse(decision, record, now)
                self.offsets.answered((topic, partition), offset)
            else:
                runnable.append((record, decision, record_headers))
        answered = self.dedupe.seen([_dedupe_key(decision.request) for _, decision, _ in runnable])
        for record, decision, record_headers in runnable:
            self._queue(record, decision, record_headers, answered, now)

    def _triage(self, value: bytes | None, record_headers: dict[str, str], now: int) -> Runnable | Refused:
        """:func:`triage`, and the reply address checked; whatever goes wrong costs this record only."""
        try:
            decision = triage(
                value,
                record_headers,
                now_ms=now,
                count_tokens=self.runner.count_tokens,
                max_context=self.runner.max_context,
                render_chat=self.runner.render_chat,
                served_model=self.runner.name,
            )
            address = decision.request.reply_to if isinstance(decision, Runnable) else decision.address
            why = self.reply_topics.why_unanswerable(address) if address is not None else None
        except Exception as exc:  # a bug or a poison record in triage: this record's answer is internal
            log.exception("worker.triage_failed")
            request_id, address = reply_target(value or b"", record_headers)
            reason = f"triage failed: {type(exc).__name__}: {str(exc)[:200]}"
            return Refused(
                ErrorReply(request_id=request_id, code=ErrorCode.INTERNAL, message=reason),
                address,
                None,
                reason,
            )
        if why is None:
            return decision
        if isinstance(decision, Runnable):  # nothing can be answered there: a dead letter only
            reply = ErrorReply(
                request_id=decision.request.request_id, code=ErrorCode.INVALID_REQUEST, message=why
            )
            return Refused(reply, None, decision.request, why)
        return dataclasses.replace(
            decision, address=None, dead_letter_reason=decision.dead_letter_reason or why
        )

    def _queue(
        self,
        record: Message,
        decision: Runnable,
        record_headers: dict[str, str],
        answered: AbstractSet[str],
        now: int,
    ) -> None:
        topic, partition, offset = _coordinates(record)
        key = _dedupe_key(decision.request)
        if not self.dedupe.take(key, answered):  # a second copy of a dispatched request
            self.offsets.answered((topic, partition), offset)
            metrics.DUPLICATES.inc()
            log.info(
                "worker.duplicate_skipped",
                request_id=decision.request.request_id,
                in_flight=self.dedupe.in_flight(key),
            )
            return
        job = Job(
            decision.request,
            decision.tokens,
            (topic, partition),
            offset,
            now,
            decision.prompt,
            rate_limit_header(record_headers),
        )
        self.waiting.add(job, tokens=job.tokens, deadline_ms=job.request.deadline_ms, now_ms=now)

    def _refuse(self, decision: Refused, record: Message, now: int) -> None:
        reply = decision.reply
        if decision.address is not None:
            self.outbox.reply(decision.address, reply.request_id, encode(reply))
        if decision.request is not None:
            self.outbox.event(self.outbox.outcome(decision.request, reply.code.value, now))
        metrics.ANSWERS.labels(reply.code.value).inc()
        if decision.dead_letter_reason is not None:
            self.outbox.dead_letter(
                dead_letter(
                    record.value() or b"",
                    reason=decision.dead_letter_reason,
                    code=reply.code,
                    source=_coordinates(record),
                    request_id=reply.request_id,
                    now_ms=now,
                )
            )
        log.info("worker.refused", request_id=reply.request_id, code=reply.code.value, reason=reply.message)

    def _answer_late(self, job: Job, now: int, where: str = "waiting for a batch slot") -> None:
        waited = now - job.consumed_ms
        self.outbox.error(
            job.request, ErrorCode.DEADLINE_EXCEEDED, f"deadline passed after {waited} ms {where}", now
        )
        self.outbox.answered.append((job.source, job.offset))
        metrics.ANSWERS.labels(ErrorCode.DEADLINE_EXCEEDED.value).inc()

    def _drop_expired(self, now: int) -> None:
        """Sequences whose deadline passed mid-decode leave the batch: nobody waits for
        them any more, and their slots and compute go to requests that someone does."""

        def alive(job: Job) -> bool:
            return job.request.deadline_ms is None or job.request.deadline_ms > now

        for job in self.running.remove(alive):
            self._release(job)
            self._answer_late(job, now, "in the batch, before the answer was complete")

    # -- the model -------------------------------------------------------------------

    def _join(self, now: int) -> None:
        budget_used = sum(job.tokens for job in self._running_jobs())
        jobs = self.waiting.take(now, rows=len(self.running), tokens=budget_used)
        if not jobs:
            return
        for job in jobs:
            self._started_ms[job.request.request_id] = now
            self._recent_queue_ms = max(self._recent_queue_ms, now - job.consumed_ms)
            metrics.QUEUE_SECONDS.observe(max(0, now - (job.request.created_ms or now)) / 1000)
        metrics.BATCH_SIZE.observe(len(self.running) + len(jobs))
        metrics.BATCH_TOKENS.observe(budget_used + sum(j.tokens for j in jobs))
        inputs = [(job, GenerationInput(job.prompt, job.request.sampling)) for job in jobs]
        try:
            self.running.join(inputs)
        except Exception as exc:
            log.exception("worker.model_failed", stage="prefill", size=len(jobs))
            if len(jobs) == 1:
                self._fail(jobs, exc)
                return
            # A failed join leaves the batch as it was: join them one by one, so a request
            # that breaks the model fails alone instead of failing its neighbours.
            for item in inputs:
                try:
                    self.running.join([item])
                except Exception as alone:
                    log.exception("worker.model_failed", stage="prefill", size=1)
                    self._fail([item[0]], alone)

    def _running_jobs(self) -> list[Job]:
        return list(self.running.keys())

    def _step(self) -> None:
        self._drop_expired(self.clock_ms())
        if not len(self.running):
            return
        started = time.monotonic()
        jobs = self._running_jobs()  # before the step: a failing step may have let go of them
        try:
            finished = self.running.step(self._on_text)
        except Exception as exc:
            log.exception("worker.model_failed", stage="decode", size=len(jobs))
            self.running = self.runner.batch()
            self._fail(jobs, exc)
            return
        metrics.COMPUTE_SECONDS.observe(time.monotonic() - started)
        for job, out in finished:
            self._finish(job, out)

    def _release(self, job: Job) -> int | None:
        """Forget a request's bookkeeping, and say when its compute started. Its chunk count
        too: a stream re-run here after a rebalance must number its chunks from 0 again."""
        self._chunk_counts.pop(job.request.request_id, None)
        return self._started_ms.pop(job.request.request_id, None)

    def _finish(self, job: Job, out: GenerationOutput) -> None:
        now = self.clock_ms()
        started = self._release(job)
        if started is None:
            started = now
        queue_ms = float(max(0, started - job.request.created_ms)) if job.request.created_ms else 0.0
        compute_ms = float(now - started)
        result = result_of(
            job,
            out.text,
            out.finish_reason,
            out.prompt_tokens,
            out.completion_tokens,
            model=self.runner.name,
            worker_id=self.config.worker_id,
            queue_ms=queue_ms,
            compute_ms=compute_ms,
        )
        event = self.outbox.outcome(
            job.request,
            "ok",
            now,
            prompt_tokens=out.prompt_tokens,
            completion_tokens=out.completion_tokens,
            queue_ms=queue_ms,
            compute_ms=compute_ms,
            batch_size=len(self.running) + 1,
        )
        self.outbox.result(job, result, event)
        metrics.ANSWERS.labels("ok").inc()
        metrics.GENERATED_TOKENS.inc(out.completion_tokens)
        self.telemetry.generated(out.completion_tokens)

    def _fail(self, jobs: list[Job], exc: Exception) -> None:
        now = self.clock_ms()
        for job in jobs:
            self._release(job)
            self.outbox.error(job.request, ErrorCode.INTERNAL, f"model {self.runner.name} failed: {exc}", now)
            self.outbox.answered.append((job.source, job.offset))
            metrics.ANSWERS.labels(ErrorCode.INTERNAL.value).inc()

    def _on_text(self, job: Job, text: str) -> None:
        """Token chunks go out at once, outside the transactions: a read_committed client
        would otherwise see them only with the final result. At-least-once; the chunk
        index lets the client drop a repeat."""
        req = job.request
        if not req.stream:
            return
        index = self._chunk_counts.get(req.request_id, 0)
        self._chunk_counts[req.request_id] = index + 1
        chunk = TokenChunk(
            request_id=req.request_id,
            index=index,
            text=text,
            rate_limit=job.rate_limit if index == 0 else None,
        )
        self.chunk_producer.produce(
            req.reply_to.topic,
            value=encode(chunk),
            key=req.request_id.encode(),
            partition=req.reply_to.partition,
        )
        self.chunk_producer.poll(0)

    # -- delivery -------------------------------------------------------------------

    def _commit(self) -> None:
        """Answers, events and the offsets they free, in one transaction."""
        outbox, self.outbox = self.outbox, self._new_outbox()
        for tp, offset in outbox.answered:
            self.offsets.answered(tp, offset)
        offsets = self.offsets.committable()
        if self.chunk_producer.flush(10):  # a stream's chunks must precede its result
            log.warning("worker.chunks_unflushed", pending=len(self.chunk_producer))
        try:
            self.producer.begin_transaction()
            for out in outbox.records:
                if out.partition is None:
                    self.producer.produce(
                        out.topic, out.value, out.key, headers=out.headers, on_delivery=self._delivered
                    )
                else:
                    self.producer.produce(
                        out.topic,
                        out.value,
                        out.key,
                        partition=out.partition,
                        headers=out.headers,
                        on_delivery=self._delivered,
                    )
                self.producer.poll(0)
            if offsets:
                self.producer.send_offsets_to_transaction(
                    [TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                    self.consumer.consumer_group_metadata(),
                    30,
                )
            self.producer.commit_transaction(60)
        except KafkaException as exc:
            self._recover(exc)
            return
        self._last_commit = time.monotonic()
        self.offsets.mark_committed(offsets)
        self.dedupe.committed(outbox.answered_keys)
        if self.cache is not None:
            self.cache.store(outbox.cacheable)

    def _delivered(self, error: KafkaError | None, record: Message) -> None:
        if error is not None:
            topic, partition = record.topic(), record.partition()
            log.warning("worker.delivery_failed", topic=topic, partition=partition, error=error.str())
            if topic is not None and partition is not None:
                self.reply_topics.delivery_failed(topic, partition, error)

    def _recover(self, exc: KafkaException) -> None:
        """An aborted commit: forget everything unanswered and re-read from the committed offsets."""
        error = exc.args[0]
        metrics.ABORTED_TRANSACTIONS.inc()
        log.error("worker.transaction_failed", error=str(error), retriable=error.retriable())
        if error.code() in _FENCED:
            raise exc  # a newer instance owns this transactional id: this process must not go on
        if error.fatal() or not self._aborted():
            self._replace_producer()
        assignment = self.consumer.assignment()
        self._forget([(tp.topic, tp.partition) for tp in assignment])
        self.dedupe.drop_all()  # the aborted answers are re-read and must be answered again
        for tp in self.consumer.committed(assignment, 10):
            self.consumer.seek(
                TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
            )

    def _aborted(self) -> bool:
        try:
            self.producer.abort_transaction(30)
        except KafkaException as exc:
            log.error("worker.abort_failed", error=str(exc.args[0]))
            return False
        return True

    def _replace_producer(self) -> None:
        """A producer left unusable (a fatal error, e.g. after its transaction coordinator died
        mid-commit) is replaced: the new one, with the same transactional id, aborts whatever
        the old one left open and goes on."""
        log.warning("worker.producer_replaced")
        del self.__dict__["producer"]  # functools.cached_property: the next use builds a new one
        self.producer.init_transactions(60)

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions move away: commit what is answered, drop the rest (the next owner redoes it)."""
        if self.outbox:
            self._commit()
        self._forget([(tp.topic, tp.partition) for tp in partitions])

    def _forget(self, tps: list[tuple[str, int]]) -> None:
        gone = set(tps)
        dropped = self.running.remove(lambda job: job.source not in gone)
        dropped += self.waiting.remove(lambda job: job.source not in gone)
        for job in dropped:
            self._release(job)
        self.dedupe.dropped(_dedupe_key(job.request) for job in dropped)
        self.offsets.forget(tps)
        if dropped:
            log.info("worker.dropped_for_rebalance", requests=len(dropped), partitions=sorted(gone))
