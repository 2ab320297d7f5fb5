"""Reply correlation: one assigned reply partition, futures keyed by request id.

The consumer uses ``assign()`` (no group, no commits) at the partition's high
watermark, read before the first request is sent, so no early reply is missed.
Replies for unknown ids (late after a timeout, another client's, duplicates)
are dropped quietly and counted.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import structlog
import tenacity
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from kinfer.producers.errors import ClientClosed, Unavailable
from kinfer.schemas import CancelAck, ErrorCode, ErrorReply, InvalidMessage, Reply, TokenChunk, headers
from kinfer.schemas.codec import decode_reply_record
from kinfer.schemas.kafka_client import KafkaConnection, client_config, take_available
from kinfer.schemas.signing import REPLY_SIGNATURE, reply_signed

log = structlog.get_logger(__name__)


@dataclass
class ReplyStats:
    delivered: int = 0
    duplicate_answers: int = 0
    """Terminal answers for an id this client was already answered: never expected."""
    duplicate_chunks: int = 0
    """Repeated stream chunks (at-least-once by design), dropped by index."""
    unknown: int = 0
    """Replies for ids not awaited here: late after a timeout, or another client's."""
    undecodable: int = 0
    forged: int = 0
    """Answers for an awaited id without the pipeline's signature for it (``verify_replies``):
    written by someone else, dropped."""


RecordHeaders = list[tuple[str, str | bytes | None]] | dict[str, str | bytes | None] | None
"""A record's headers as confluent-kafka gives them."""

REPLY_READER_GROUP = "kinfer-reply-"
"""Prefix of a reply reader's group id (never joined; ACLs on a secured cluster name it)."""
_REMEMBERED_ANSWERS = 10_000
"""Answered ids kept to tell a duplicate answer from an unknown one."""


class ReplyRouter:
    def __init__(
        self, kafka: KafkaConnection, topic: str, partition: int, returns: Sequence[str] = ()
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.returns = list(returns)
        """Linked clusters: peers' copies of this topic's return topics, read at ``partition`` too."""
        self.stats = ReplyStats()
        self._pending: dict[str, asyncio.Future[Reply]] = {}
        self._streams: dict[str, _Stream] = {}
        self._cancels: dict[str, tuple[asyncio.Future[CancelAck], str | None]] = {}
        self._lock = threading.Lock()
        self._answered: OrderedDict[str, None] = OrderedDict()
        self._reply_keys: dict[str, str] = {}
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._consumer = Consumer(
            client_config(
                kafka,
                {
                    # required by librdkafka; never joined
                    "group.id": f"{REPLY_READER_GROUP}{uuid.uuid4().hex}",
                    "enable.auto.commit": False,
                    "isolation.level": "read_committed",
                    "enable.partition.eof": False,
                },
            )
        )
        self._thread = threading.Thread(target=self._run, name=f"kinfer-replies-{partition}", daemon=True)

    def start(self, loop: asyncio.AbstractEventLoop, timeout_s: float = 10.0) -> None:
        """Assign the partition (of the reply topic and each return copy) at its current end;
        returns once positioned."""
        self._loop = loop
        read_end = tenacity.retry(
            retry=tenacity.retry_if_exception(_retriable),
            stop=tenacity.stop_after_delay(timeout_s),
            wait=tenacity.wait_exponential(multiplier=0.05, max=1.0),
            reraise=True,
        )(self._consumer.get_watermark_offsets)
        positioned = []
        for topic in [self.topic, *self.returns]:
            try:
                _, high = read_end(TopicPartition(topic, self.partition), timeout=timeout_s)
            except KafkaException as exc:
                raise Unavailable(f"cannot read reply partition {topic}[{self.partition}]: {exc}") from exc
            positioned.append(TopicPartition(topic, self.partition, high))
        self._consumer.assign(positioned)
        self._thread.start()

    def expect(self, request_id: str, reply_key: str | None = None) -> asyncio.Future[Reply]:
        """The call's answer; with ``reply_key``, only one the pipeline signed with it."""
        assert self._loop is not None, "start() first"
        future: asyncio.Future[Reply] = self._loop.create_future()
        with self._lock:
            self._pending[request_id] = future
            self._expect_signed(request_id, reply_key)
        return future

    def expect_stream(self, request_id: str, reply_key: str | None = None) -> asyncio.Queue[Reply]:
        """Chunks in order, repeats dropped, then the terminal reply."""
        assert self._loop is not None, "start() first"
        queue: asyncio.Queue[Reply] = asyncio.Queue()
        with self._lock:
            self._streams[request_id] = _Stream(queue)
            self._expect_signed(request_id, reply_key)
        return queue

    def _expect_signed(self, request_id: str, reply_key: str | None) -> None:
        """Under the lock."""
        if reply_key is not None:
            self._reply_keys[request_id] = reply_key

    def expect_cancel(self, request_id: str, reply_key: str | None = None) -> asyncio.Future[CancelAck]:
        """The acknowledgement of a cancel of ``request_id`` sent from this client."""
        assert self._loop is not None, "start() first"
        future: asyncio.Future[CancelAck] = self._loop.create_future()
        with self._lock:
            self._cancels[request_id] = (future, reply_key)
        return future

    def forget_cancel(self, request_id: str) -> None:
        with self._lock:
            self._cancels.pop(request_id, None)

    def forget(self, request_id: str) -> None:
        with self._lock:
            self._pending.pop(request_id, None)
            self._streams.pop(request_id, None)
            self._reply_keys.pop(request_id, None)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                records = take_available(self._consumer, 500, 0.1)
            except RuntimeError:
                return  # consumer closed under us
            for record in records:
                err = record.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        log.warning("replies.consume_error", error=str(err))
                    continue
                self._route(record.value() or b"", record.headers())

    def _route(self, value: bytes, record_headers: RecordHeaders = None) -> None:
        try:
            record = decode_reply_record(value)
        except InvalidMessage as exc:
            self.stats.undecodable += 1
            log.warning("replies.undecodable", error=exc.message)
            return
        if isinstance(record, CancelAck):
            self._acknowledged(record, value, record_headers)
            return
        reply: Reply = record
        with self._lock:
            if not self._signed_for(reply, value, record_headers):
                self.stats.forged += 1
                log.warning("replies.forged_dropped", request_id=reply.request_id)
                return
            stream = self._streams.get(reply.request_id)
            if stream is not None:
                if not stream.accepts(reply):
                    self.stats.duplicate_chunks += 1
                    return
                if not isinstance(reply, TokenChunk):
                    del self._streams[reply.request_id]
                    self._remember(reply.request_id)
            elif isinstance(reply, TokenChunk):
                return  # chunks of a call that does not stream (or gave up): ignored
            future = None if stream is not None else self._pending.pop(reply.request_id, None)
            if stream is None and future is None:
                if reply.request_id in self._answered:
                    self.stats.duplicate_answers += 1
                else:
                    self.stats.unknown += 1
                return
            if future is not None:
                self._remember(reply.request_id)
        assert self._loop is not None
        if stream is not None:
            self._loop.call_soon_threadsafe(stream.queue.put_nowait, reply)
            return
        assert future is not None
        self.stats.delivered += 1
        self._loop.call_soon_threadsafe(_resolve, future, reply)

    def _acknowledged(self, ack: CancelAck, value: bytes, record_headers: RecordHeaders) -> None:
        with self._lock:
            future, key = self._cancels.get(ack.request_id, (None, None))
            if future is None:
                self.stats.unknown += 1
                return
            signature = headers.decode_headers(record_headers).get(REPLY_SIGNATURE)
            if key is not None and not reply_signed(key, value, signature):
                self.stats.forged += 1
                return
            del self._cancels[ack.request_id]
        assert self._loop is not None
        self._loop.call_soon_threadsafe(_resolve, future, ack)

    def _signed_for(self, reply: Reply, value: bytes, record_headers: RecordHeaders) -> bool:
        """Under the lock: whether the reply carries the pipeline's signature for its request,
        when one is expected. No unsigned answer is taken, not even an ``unauthenticated``
        refusal: admission withholds those (it cannot tell the tenant from a forger), so one on
        the partition is a forgery that would fail the call."""
        key = self._reply_keys.get(reply.request_id)
        if key is None:
            return True
        signature = headers.decode_headers(record_headers).get(REPLY_SIGNATURE)
        return reply_signed(key, value, signature)

    def _remember(self, request_id: str) -> None:
        """Under the lock."""
        self._answered[request_id] = None
        if len(self._answered) > _REMEMBERED_ANSWERS:
            self._answered.popitem(last=False)

    def close(self, reason: str = "client closed") -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._consumer.close()
        with self._lock:
            pending, self._pending = self._pending, {}
            streams, self._streams = self._streams, {}
        for request_id, stream in streams.items():
            if self._loop is not None and not self._loop.is_closed():
                closed = ErrorReply(
                    request_id=request_id,
                    code=ErrorCode.UNAVAILABLE,
                    message=f"{reason} before the stream ended",
                )
                self._loop.call_soon_threadsafe(stream.queue.put_nowait, closed)
        for request_id, future in pending.items():
            if self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(
                    _fail, future, ClientClosed(f"{reason} before an answer came", request_id=request_id)
                )


_STARTUP_RETRIABLE = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
    }
)


class _Stream:
    """A streaming call's queue and the next chunk index it expects."""

    def __init__(self, queue: asyncio.Queue[Reply]) -> None:
        self.queue = queue
        self.next_index = 0

    def accepts(self, reply: Reply) -> bool:
        if not isinstance(reply, TokenChunk):
            return True
        if reply.index < self.next_index:
            return False  # a repeat (chunks are at-least-once)
        self.next_index = reply.index + 1
        return True


def _retriable(exc: BaseException) -> bool:
    """Errors of a topic that was just created or a leader that is moving."""
    if not isinstance(exc, KafkaException):
        return False
    err = exc.args[0]
    return bool(err.retriable()) or err.code() in _STARTUP_RETRIABLE


R = TypeVar("R")


def _resolve(future: asyncio.Future[R], reply: R) -> None:
    if not future.done():
        future.set_result(reply)


def _fail(future: asyncio.Future[Reply], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
