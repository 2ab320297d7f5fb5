"""The inference worker: the loop that wires its parts.

consume -> intake (triage, reply checks, de-duplication) -> batch scheduler (continuous
batching, no Kafka) -> outbox (answers, events, dead letters) -> transactional committer
(answers, events and offsets in one transaction). Streamed chunks go out on their own
(``chunks.py``); the warm pool sees the worker through its heartbeats (``membership.py``).

A worker killed mid-batch leaves an open transaction the broker aborts; its partitions
move to another member, which answers the same requests once for read_committed readers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import redis
import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from kinfer.consumers import metrics
from kinfer.consumers.batching.adaptive import batch_policy
from kinfer.consumers.batching.offsets import OffsetTracker
from kinfer.consumers.cancels import CancelWatch
from kinfer.consumers.chunks import ChunkPublisher
from kinfer.consumers.clients import WorkerClients
from kinfer.consumers.commit_thread import Committed, CommitThread, TransactionHung, exit_stuck
from kinfer.consumers.committer import REWIND_TIMEOUT_S, ResumePointUnknown, TransactionalCommitter
from kinfer.consumers.config import WorkerConfig
from kinfer.consumers.dedupe import RequestDeduplicator
from kinfer.consumers.engine import ModelRunner
from kinfer.consumers.intake import Duplicate, Intake, Intaken, Refusal, source_of
from kinfer.consumers.membership import PoolMembership, State
from kinfer.consumers.outbox import Job, Outbox, result_of
from kinfer.consumers.pauses import Pauses, partition_names, resume_assigned
from kinfer.consumers.pool.registry import PoolRegistry
from kinfer.consumers.pool.tuning import DRAIN, parse_tuning
from kinfer.consumers.redis_gate import RedisGate, ping_probe
from kinfer.consumers.reply_topics import ReplyTopics
from kinfer.consumers.result_cache import ResultCache
from kinfer.consumers.return_path import ReturnPath
from kinfer.consumers.scheduler import BatchScheduler, Cancelled, Expired, Failed, Finished, Outcome, nothing
from kinfer.consumers.self_test import health_check, warm_up
from kinfer.consumers.telemetry import DeviceSampler
from kinfer.schemas import ErrorCode, InferenceRequest, TopicNames
from kinfer.schemas.errors import SERVER_ERRORS
from kinfer.schemas.kafka_client import take_available
from kinfer.schemas.redis_bounds import WORKER_S, bounded
from kinfer.schemas.request_keys import request_key
from kinfer.schemas.serving import WorkerLoad

log = structlog.get_logger(__name__)

LEAVING = ("release", DRAIN)
"""Pool commands that take a worker out of its group."""

COMMIT_INTERVAL_S = 0.02
"""While the batch runs, answers are committed at most this often (one transaction each, on
the commit thread, one at a time); an idle worker commits at once and waits for it."""


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
        self.redis_gate = RedisGate(probe=ping_probe(config.redis_url))
        client = redis.Redis.from_url(config.redis_url, **bounded(WORKER_S)) if config.redis_url else None
        self.cache = (
            ResultCache(client, config.topic_prefix, config.cache_ttl_s, self.redis_gate) if client else None
        )
        self.dedupe = RequestDeduplicator(client, config.topic_prefix, gate=self.redis_gate)
        self.cancels = CancelWatch(client, config.topic_prefix, self.redis_gate)
        self.clients = WorkerClients(config)
        self.reply_topics = ReplyTopics(self.topics, self._partitions_of)
        self.chunks = ChunkPublisher(lambda: self.clients.chunk_producer)
        self.scheduler = BatchScheduler(
            runner,
            max_batch_tokens=config.max_batch_tokens,
            max_batch_requests=config.max_batch_requests,
            max_wait_ms=config.max_wait_ms,
            on_text=self.chunks.publish,
            policy=batch_policy(config.batching),
            quantum=config.fair_quantum_tokens,
            lower_share=config.lower_band_share,
            fair=config.queue == "fair",
        )
        self.intake = Intake(runner, self.reply_topics, self.dedupe, ReturnPath(self.topics, config.region))
        self.offsets = OffsetTracker()
        self.committer = TransactionalCommitter(self.clients, self.offsets, self.reply_topics.delivery_failed)
        self.commits = CommitThread(self.committer, hang_s=config.transaction_hang_s)
        registry = (
            PoolRegistry(config.redis_url, config.topic_prefix, config.region, WORKER_S)
            if config.redis_url
            else None
        )
        self.membership = PoolMembership(registry, self.redis_gate, config.worker_id, runner.name)
        device = str(getattr(runner, "device", config.device))
        self.telemetry = DeviceSampler(device, every_s=config.telemetry_interval_s)
        self.outbox = self._new_outbox()
        self._last_commit = 0.0
        self._last_busy_ms = 0
        self.pauses = Pauses(config.max_waiting)

    def stop(self) -> None:
        """Finish what is running, answer it, then leave the group (SIGTERM does this)."""
        self._stop.set()

    def run(self, *, standby: bool = False) -> None:
        """Serve until stopped. ``standby``: load and warm the model, then wait to be
        promoted by the pool controller before joining the group; a released worker
        goes back to standby with its model still loaded."""
        self.clients.producer.init_transactions(30)
        weights = getattr(self.runner, "parameter_bytes", lambda: 0)()
        metrics.PARAMETER_BYTES.set(weights)
        log.info("worker.ready", model=self.runner.name, parameter_bytes=weights, standby=standby)
        mode: State = "standby" if standby else "active"
        drained_reason = ""
        try:
            if standby:
                warm_up(self.runner)
            while not self._stop.is_set():
                if mode == "standby":
                    if self.membership.tick("standby", self.clock_ms(), wait_s=1.0) == "promote":
                        mode = "active"
                elif mode == "drained":  # stays out, saying why, until restarted
                    self.membership.tick(
                        "drained", self.clock_ms(), wait_s=1.0, drained_reason=drained_reason
                    )
                else:
                    ended = self._serve()
                    if ended == "release":
                        mode = "standby"
                    elif ended == "drain":
                        drained_reason = health_check(self.runner)
                        self.membership.health_checks += 1
                        self.telemetry.forget_errors()  # judged already: rejoin with a clean slate
                        mode = "drained" if drained_reason else "active"
        finally:
            self.commits.close()
            self.membership.leave()
            for producer in (self.clients.producer, self.clients.chunk_producer):
                try:
                    producer.flush(10)
                except KafkaException as exc:  # a fatal producer has nothing left to deliver
                    log.warning("worker.flush_failed", error=str(exc.args[0]))
            log.info("worker.stopped", worker=self.config.worker_id)

    def _serve(self) -> str | None:
        """Consume and answer until stopped, released or drained: the pool's command that
        ended it ("release": back to standby; "drain": out of the group for a health check)."""
        sources = self.topics.dispatch_sources(self.config.region, self.config.peer_regions)
        consumer = self.clients.consumer
        self.cancels.start()  # before any record: a cancel is then in the marks or the channel
        consumer.subscribe(
            sources, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        # Idle counts from now: a worker just promoted is not released before it had a chance.
        self._last_busy_ms = self.clock_ms()
        log.info("worker.started", topics=sources, group=self.config.consumer_group, model=self.runner.name)
        ended: str | None = None
        try:
            while not self._stop.is_set() and ended not in LEAVING:
                ended = self._turn()
            self._drain()
        except (TransactionHung, ResumePointUnknown) as exc:
            exit_stuck(exc, self.clients.consumer)
        finally:
            consumer.close()
            self.cancels.close()
        if ended in LEAVING:
            log.info(
                f"worker.{'released' if ended == 'release' else 'drained'}", worker=self.config.worker_id
            )
            self.clients.drop_consumer()
            return ended
        return None

    def _turn(self) -> str | None:
        """One iteration: take in records, decode one step, commit, report; the pool's command."""
        self._collect(wait=False)
        away = self._engine_away()
        records = self._poll(idle=away is not None)
        now = self.clock_ms()
        for record in records:
            self.offsets.consumed(*_partition_offset(record))
        records = self._skip_answered(records)
        self._take_in(self.intake.take_in(records, now) if records else [], now)
        for outcome in self.scheduler.cancel(self.cancels.new(job.key for job in self.scheduler.held())):
            self._answer(outcome)  # before the step: a cancelled sequence decodes no further
        self.pauses.bound(self.clients.consumer, (job.source for job in self.scheduler.waiting.items()))
        if away is not None:
            self.membership.tick("drained", now, drained_reason=f"engine server away: {away}")
            return None
        ticked = time.monotonic()
        outcomes = self.scheduler.tick(now)
        self.telemetry.computed(time.monotonic() - ticked)
        for outcome in outcomes:
            self._answer(outcome)
        if records or len(self.scheduler) or outcomes:
            self._last_busy_ms = self.clock_ms()
        if self.outbox and not len(self.scheduler):
            self._commit(wait=True)  # nothing to overlap with: answer now
        elif self.outbox and not self.commits.pending and self._commit_due():
            self._commit(wait=False)  # decode on while the broker commits
        self.telemetry.maybe_sample(waiting=self.scheduler.waiting_count)
        if not self.membership.due("active"):
            return None
        command = self.membership.tick(
            "active",
            self.clock_ms(),
            last_busy_ms=self._last_busy_ms,
            queue_ms=self._queue_delay_ms(),
            load=self._load(),
        )
        if command is not None and (tuning := parse_tuning(command)) is not None:
            log.info("worker.tuned", max_wait_ms=tuning, was=self.scheduler.max_wait_ms)
            self.scheduler.max_wait_ms = tuning  # at run time: the next idle batch waits this long
            return None
        return command

    def _engine_away(self) -> str | None:
        """Why the engine (a server) does not answer, or None. While it does not, the worker
        takes no records: they wait in Kafka rather than fail, admission sees this worker
        drained with the reason, and what was running is answered (its streams ended as
        ``unavailable``)."""
        why = self.runner.unavailable()
        if why is None:
            if self.pauses.engine_away:
                self.pauses.resume_all(self.clients.consumer)
                log.info("worker.engine_back", model=self.runner.name)
            return None
        if not self.pauses.engine_away:
            log.warning("worker.engine_away", model=self.runner.name, reason=why)
        self.pauses.pause_all(self.clients.consumer)
        while len(self.scheduler):  # streams already failing: answer them
            for outcome in self.scheduler.step(self.clock_ms()):
                self._answer(outcome)
        if self.outbox:
            self._commit(wait=True)
        return why

    def _load(self) -> WorkerLoad:
        """How busy it is and its batch wait, for the heartbeat the tuner reads."""
        return WorkerLoad(
            utilisation=self.telemetry.utilisation,
            waiting_peak=self.telemetry.waiting_peak,
            max_wait_ms=self.scheduler.max_wait_ms,
            configured_max_wait_ms=self.config.max_wait_ms,
            p99_ms=self.telemetry.p99_ms,
            answers=self.telemetry.answers,
            error_ratio=self.telemetry.error_ratio,
        )

    def _poll(self, *, idle: bool = False) -> list[Message]:
        """Never wait while sequences are decoding; when idle, wait for work (or the batch wait)."""
        if idle:
            timeout = 0.2
        elif len(self.scheduler):
            timeout = 0.0
        elif self.scheduler.waiting_count:
            timeout = min(0.2, self.scheduler.wait_ms(self.clock_ms()) / 1000)
        else:
            timeout = 0.2
        records = take_available(self.clients.consumer, self.config.max_batch_requests, timeout)
        return [r for r in records if _usable(r)]

    def _take_in(self, items: list[Intaken], now: int) -> None:
        """Records taken in: jobs join the queue (fetched before a pause too: they wait there),
        unless cancelled already; refusals and copies are answered or skipped."""
        cancelled = self.cancels.marked(item.key for item in items if isinstance(item, Job))
        for item in items:
            if isinstance(item, Job) and item.key in cancelled:
                self._answer(Cancelled(item, nothing(item), "dispatched"))
            else:
                self._take(item, now)

    def _take(self, item: Intaken, now: int) -> None:
        if isinstance(item, Job):
            self.scheduler.add(item, now)
        elif isinstance(item, Refusal):
            self.outbox.refusal(item.decision, item.source, item.value, now, item.reply_key)
            reply = item.decision.reply
            self._count(reply.code.value, item.decision.request)
            log.info(
                "worker.refused", request_id=reply.request_id, code=reply.code.value, reason=reply.message
            )
        else:
            assert isinstance(item, Duplicate)
            self.outbox.skip(item.source)
            metrics.DUPLICATES.inc()
            log.info("worker.duplicate_skipped", request_id=item.request_id, in_flight=item.in_flight)

    def _answer(self, outcome: Outcome) -> None:
        job, now = outcome.job, self.clock_ms()
        self.chunks.forget(job.request.request_id)
        if isinstance(outcome, Finished):
            out = outcome.output
            result = result_of(
                job,
                out,
                model=self.runner.name,
                worker_id=self.config.worker_id,
                queue_ms=outcome.queue_ms,
                compute_ms=outcome.compute_ms,
                started_ms=outcome.started_ms,
            )
            event = self.outbox.outcome(
                job.request,
                "ok",
                now,
                prompt_tokens=out.prompt_tokens,
                completion_tokens=result.usage.completion_tokens,
                queue_ms=outcome.queue_ms,
                compute_ms=outcome.compute_ms,
                batch_size=outcome.batch_size,
            )
            self.outbox.result(job, result, event)
            self._count("ok", job.request, now)
            metrics.GENERATED_TOKENS.inc(result.usage.completion_tokens)
            self.telemetry.generated(result.usage.completion_tokens)
            return
        if isinstance(outcome, Cancelled):
            self._cancelled(outcome, now)
            return
        assert isinstance(outcome, Expired | Failed)
        code = ErrorCode.DEADLINE_EXCEEDED if isinstance(outcome, Expired) else outcome.code
        self.outbox.error(job, code, outcome.message, now)
        self._count(code.value, job.request, now)

    def _cancelled(self, outcome: Cancelled, now: int) -> None:
        job, made = outcome.job, outcome.made
        sampling = job.request.sampling
        generated = made.completion_tokens + sum(c.completion_tokens for c in made.more)
        message = (
            f"cancelled {'mid-decode' if outcome.where == 'decoding' else 'before it joined a batch'}"
            f" after {generated} of at most {sampling.max_tokens * sampling.n} tokens"
        )
        self.outbox.error(job, ErrorCode.CANCELLED, message, now, made=made)
        self._count(ErrorCode.CANCELLED.value, job.request, now)
        metrics.CANCELLED.labels(outcome.where).inc()
        metrics.CANCEL_SAVED_TOKENS.labels(outcome.where).inc(
            max(0, sampling.max_tokens * sampling.n - generated)
        )
        metrics.GENERATED_TOKENS.inc(generated)
        log.info("worker.cancelled", request_id=job.request.request_id, where=outcome.where, tokens=generated)

    def _count(self, status: str, request: InferenceRequest | None, now_ms: int | None = None) -> None:
        """An answer in the signals the tuner reads: error rate per region and model, and (for
        requests taken in) end-to-end latency per region."""
        metrics.ANSWERS.labels(status, self.config.region, self.runner.name).inc()
        latency_ms = None
        if request is not None and now_ms is not None and request.created_ms:
            latency_ms = max(0, now_ms - request.created_ms)
            metrics.REQUEST_SECONDS.labels(self.config.region).observe(latency_ms / 1000)
        self.telemetry.answered(latency_ms, server_error=status in SERVER_ERRORS)

    def _queue_delay_ms(self) -> int:
        """Longest wait for a batch slot since the last heartbeat, or of a request still waiting."""
        waited, self.scheduler.recent_queue_ms = self.scheduler.recent_queue_ms, 0
        return max(waited, self.scheduler.oldest_wait_ms(self.clock_ms()))

    def _drain(self) -> None:
        """On stop: finish running sequences and commit; waiting ones go back uncommitted."""
        while len(self.scheduler):
            for outcome in self.scheduler.step(self.clock_ms()):
                self._answer(outcome)
        self._commit(wait=True)

    def _commit_due(self) -> bool:
        return time.monotonic() - self._last_commit >= COMMIT_INTERVAL_S

    def _commit(self, *, wait: bool) -> None:
        """Hand the outbox to the commit thread (after the last commit's outcome is in), and
        with ``wait`` see this one through too."""
        self._collect(wait=True)
        if self.outbox:
            outbox, self.outbox = self.outbox, self._new_outbox()
            group = self.clients.consumer.consumer_group_metadata()
            self.commits.submit(outbox, self.committer.prepare(outbox), group)
            self._last_commit = time.monotonic()
        if wait:
            self._collect(wait=True)

    def _collect(self, *, wait: bool) -> None:
        """Act on a finished commit: its answers are out, or it aborted."""
        done = self.commits.collect(wait=wait)
        if done is not None:
            self._settle(done)

    def _settle(self, done: Committed) -> None:
        if not done.ok:
            # Aborted: forget everything unanswered, answers decoded since included, and
            # re-read it from the committed offsets.
            self.outbox = self._new_outbox()
            self._forget([(tp.topic, tp.partition) for tp in self.clients.consumer.assignment()])
            self.dedupe.drop_all()  # the aborted answers are re-read and must be answered again
            self.committer.rewind()
            return
        self.offsets.mark_committed(done.offsets)
        self.dedupe.committed(done.outbox.answered_keys)
        if self.cache is not None:
            self.cache.store(done.outbox.cacheable)

    def _skip_answered(self, records: list[Message]) -> list[Message]:
        """Records an earlier owner of their partition answered (its commit says so: see
        ``batching/offsets.py``) are skipped, not answered again."""
        fresh = []
        for record in records:
            if self.offsets.answered_before(*_partition_offset(record)):
                self.outbox.skip(source_of(record))
                metrics.DUPLICATES.inc()
            else:
                fresh.append(record)
        if len(fresh) < len(records):
            log.info("worker.answered_before_skipped", records=len(records) - len(fresh))
        return fresh

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """New partitions: resumed, and what their earlier owner answered ahead of each committed
        offset is read (unknown while the group coordinator does not answer: then only Redis
        tells the copies apart)."""
        log.info("worker.assigned", partitions=partition_names(partitions))
        resume_assigned(consumer, partitions)
        if not partitions:
            return
        try:
            self.committer.inherit(consumer.committed(partitions, REWIND_TIMEOUT_S))
        except KafkaException as exc:
            log.warning("worker.answered_ahead_unknown", error=str(exc.args[0]))

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions move away: commit what is answered, drop the rest (the next owner redoes it)."""
        log.info("worker.revoked", partitions=partition_names(partitions))
        self._commit(wait=True)
        self._forget([(tp.topic, tp.partition) for tp in partitions])
        self.pauses.gone(partitions)

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """The group went on without this worker (it was hung past its session timeout): their
        new owner re-reads and answers what this worker held, so nothing answered here since the
        last commit may be committed now (it could be answered twice) and nothing waits for the
        broker inside this callback (the whole group's rebalance would wait with it). A commit
        still in flight ends by itself: the broker refuses a zombie's offsets (its generation is
        gone) and has aborted a transaction that outlived its timeout."""
        log.warning("worker.partitions_lost", partitions=partition_names(partitions))
        self.outbox = self._new_outbox()
        self.dedupe.drop_all()  # if they come back, their records are requests again, not copies
        self._forget([(tp.topic, tp.partition) for tp in partitions])
        self.pauses.gone(partitions)

    def _forget(self, tps: list[tuple[str, int]]) -> None:
        gone = set(tps)
        dropped = self.scheduler.remove(lambda job: job.source not in gone)
        for job in dropped:
            self.chunks.forget(job.request.request_id)
        self.dedupe.dropped(request_key(job.request.tenant, job.request.request_id) for job in dropped)
        self.offsets.forget(tps)
        if dropped:
            log.info("worker.dropped_for_rebalance", requests=len(dropped), partitions=sorted(gone))

    def _partitions_of(self, topic: str) -> int | None:
        """Partition count of a reply topic, from the consumer's metadata (None: no such topic)."""
        meta = self.clients.consumer.list_topics(topic, timeout=2).topics.get(topic)
        return len(meta.partitions) if meta is not None and meta.error is None and meta.partitions else None

    def _new_outbox(self) -> Outbox:
        return Outbox(self.topics, self.config.region, self.config.worker_id, self.runner.name)


def _partition_offset(record: Message) -> tuple[tuple[str, int], int]:
    topic, partition, offset = source_of(record)
    return (topic, partition), offset


def _usable(record: Message) -> bool:
    err = record.error()
    if err is None:
        return True
    if err.code() != KafkaError._PARTITION_EOF:
        log.warning("worker.consume_error", error=str(err))
    return False
