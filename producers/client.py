"""The asynchronous client: publish a request, await its one terminal answer."""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any

import msgspec
import structlog
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from redis.asyncio import Redis
from redis.exceptions import RedisError

from kinfer.producers.chat import ChatMessage
from kinfer.producers.config import ClientConfig
from kinfer.producers.errors import ClientClosed, DeadlineExceeded, InvalidRequest, Unavailable, from_reply
from kinfer.producers.ingress import Ingress
from kinfer.producers.readiness import check_consumers
from kinfer.producers.replies import ReplyRouter
from kinfer.producers.reply_lease import ReplyLease
from kinfer.producers.sessions import SessionStore
from kinfer.schemas import (
    CancelAck,
    CancelRequest,
    ErrorReply,
    InferenceRequest,
    InferenceResult,
    InvalidMessage,
    ReplyAddress,
    SamplingParams,
    TokenChunk,
    TopicNames,
    encode,
)
from kinfer.schemas.codec import cancel_headers
from kinfer.schemas.kafka_client import client_config
from kinfer.schemas.redis_bounds import CLIENT_S, bounded
from kinfer.schemas.signing import reply_key as derive_reply_key

log = structlog.get_logger(__name__)


class AsyncClient:
    """``async with AsyncClient(config) as client: result = await client.generate("hi")``."""

    def __init__(self, config: ClientConfig | None = None) -> None:
        self.config = config or ClientConfig()
        self.topics = TopicNames(self.config.topic_prefix)
        self.ingress = Ingress(self.config, self.topics)
        self._slots = asyncio.Semaphore(self.config.max_in_flight)
        self._router: ReplyRouter | None = None
        self._closed = threading.Event()
        self._session_store: SessionStore | None = None
        self._lease: ReplyLease | None = None

    @property
    def reply_address(self) -> ReplyAddress:
        if self._router is None:
            raise ClientClosed("client not started: use `async with` or await start()")
        return ReplyAddress(self._router.topic, self._router.partition)

    @property
    def router(self) -> ReplyRouter:
        if self._router is None:
            raise ClientClosed("client not started: use `async with` or await start()")
        return self._router

    async def start(self) -> None:
        """Connect; with ``check_consumers`` first fail fast when nothing would answer."""
        if self.config.check_consumers:
            await asyncio.to_thread(check_consumers, self.config.kafka, self.topics)
        loop = asyncio.get_running_loop()
        partition = await self._reply_partition()
        topic, *returns = self.config.reply_topics
        router = ReplyRouter(self.config.kafka, topic, partition, returns)
        await asyncio.to_thread(router.start, loop)
        self._router = router
        self.ingress.start()

    async def _reply_partition(self) -> int:
        """The configured partition, else an exclusive lease (with Redis), else a random one."""
        if self.config.reply_partition is not None:
            return self.config.reply_partition
        partitions = await asyncio.to_thread(self._reply_partitions)
        if self.config.redis_url is None:
            return random.choice(partitions)
        redis = Redis.from_url(self.config.redis_url, **bounded(CLIENT_S, asyncio=True))
        self._lease = ReplyLease(redis, self.config.topic_prefix)
        try:
            return await self._lease.acquire(partitions)
        except (OSError, RedisError) as exc:
            log.warning("client.reply_lease_unavailable", error=str(exc))
            return random.choice(partitions)

    def _reply_partitions(self) -> list[int]:
        admin = AdminClient(client_config(self.config.kafka))
        try:
            meta = admin.list_topics(self.config.reply_topic, timeout=10)
        except KafkaException as exc:
            raise Unavailable(f"Kafka at {self.config.kafka} did not answer: {exc}") from exc
        topic = meta.topics.get(self.config.reply_topic)
        if topic is None or topic.error is not None or not topic.partitions:
            raise Unavailable(
                f"reply topic {self.config.reply_topic} does not exist (or this Kafka user may not read it); "
                "run `kinfer up` (or `kinfer topics`,"
                " or `kinfer tenant add` for a tenant's private topic)"
            )
        return sorted(topic.partitions)

    async def close(self) -> None:
        """Fail pending calls with :class:`ClientClosed` and release Kafka resources."""
        if self._closed.is_set():
            return
        await self.ingress.close()
        self._closed.set()
        if self._router is not None:
            await asyncio.to_thread(self._router.close)
        if self._session_store is not None:
            await self._session_store.client.aclose()
        if self._lease is not None:
            with contextlib.suppress(OSError, RedisError):
                await self._lease.release()

    async def __aenter__(self) -> AsyncClient:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def build_request(
        self,
        prompt: str | Sequence[ChatMessage],
        *,
        sampling: SamplingParams | None = None,
        model: str | None = None,
        timeout_s: float | None = None,
        session_id: str | None = None,
        user: str | None = None,
        request_id: str | None = None,
        traceparent: str | None = None,
        tenant: str | None = None,
        deadline_ms: int | None = None,
    ) -> InferenceRequest:
        """A request addressed to this client; raises :class:`InvalidRequest` on bad input.

        ``prompt``: text to continue, or a chat's messages (rendered by the worker with
        the model's chat template). ``model``: default ``ClientConfig.model``.
        ``tenant`` overrides the configured one (the gateway sends for many tenants);
        ``deadline_ms`` (Unix ms) overrides now + timeout.
        """
        now = int(time.time() * 1000)
        timeout = timeout_s if timeout_s is not None else self.config.timeout_s
        try:
            return InferenceRequest(
                request_id=request_id or uuid.uuid4().hex,
                tenant=tenant or self.config.tenant,
                prompt=prompt if isinstance(prompt, str) else "",
                messages=() if isinstance(prompt, str) else tuple(prompt),
                reply_to=self.reply_address,
                model=model or self.config.model,
                sampling=sampling or SamplingParams(),
                user=user,
                session_id=session_id,
                created_ms=now,
                deadline_ms=deadline_ms if deadline_ms is not None else now + int(timeout * 1000),
                traceparent=traceparent,
            )
        except InvalidMessage as exc:
            raise InvalidRequest(exc.message, request_id=request_id or "") from exc

    async def generate(self, prompt: str | Sequence[ChatMessage], **kwargs: object) -> InferenceResult:
        """Build a request (see :meth:`build_request`), send it, return its result."""
        timeout = kwargs.get("timeout_s")
        request = self.build_request(prompt, **kwargs)  # type: ignore[arg-type]
        return await self.submit(
            request, timeout_s=float(timeout) if isinstance(timeout, int | float) else None
        )

    async def chat(
        self, messages: Sequence[ChatMessage], *, session_id: str | None = None, **kwargs: Any
    ) -> InferenceResult:
        """Answer the last message of a conversation.

        With ``session_id`` the session's earlier turns (kept in Redis, see
        ``ClientConfig.redis_url``) are prepended, and this turn is stored after the
        answer; ``session_id`` also keeps the conversation on one worker.
        """
        history = await self._history(session_id)
        result = await self.generate([*history, *messages], session_id=session_id, **kwargs)
        if session_id is not None:
            await self._sessions().append(session_id, [*messages, ChatMessage("assistant", result.text)])
        return result

    async def chat_stream(
        self, messages: Sequence[ChatMessage], *, session_id: str | None = None, **kwargs: Any
    ) -> AsyncIterator[TokenChunk | InferenceResult]:
        """:meth:`chat`, streamed like :meth:`stream`; the turn is stored once complete."""
        history = await self._history(session_id)
        async for item in self.stream([*history, *messages], session_id=session_id, **kwargs):
            if isinstance(item, InferenceResult) and session_id is not None:
                await self._sessions().append(session_id, [*messages, ChatMessage("assistant", item.text)])
            yield item

    async def _history(self, session_id: str | None) -> list[ChatMessage]:
        return [] if session_id is None else await self._sessions().history(session_id)

    def _sessions(self) -> SessionStore:
        if self._session_store is None:
            if self.config.redis_url is None:
                raise InvalidRequest("chat sessions need ClientConfig.redis_url (KINFER_REDIS_URL)")
            self._session_store = SessionStore(
                Redis.from_url(self.config.redis_url, **bounded(CLIENT_S, asyncio=True)),
                self.config.topic_prefix,
                ttl_s=self.config.session_ttl_s,
                max_messages=self.config.session_max_messages,
                max_bytes=self.config.session_max_bytes,
            )
        return self._session_store

    async def submit(self, request: InferenceRequest, *, timeout_s: float | None = None) -> InferenceResult:
        """Send a built request and await its terminal answer; errors raise typed exceptions."""
        if self._closed.is_set():
            raise ClientClosed("client is closed", request_id=request.request_id)
        timeout = timeout_s if timeout_s is not None else self.config.timeout_s
        async with self._slots:
            future = self.router.expect(request.request_id, self._reply_key(request))
            try:
                await self._publish(request)
                reply = await asyncio.wait_for(future, timeout)
            except TimeoutError:
                raise DeadlineExceeded(
                    f"no answer within {timeout:.1f}s", request_id=request.request_id
                ) from None
            finally:
                self.router.forget(request.request_id)
        if isinstance(reply, ErrorReply):
            raise from_reply(reply)
        assert isinstance(reply, InferenceResult)
        return reply

    async def cancel(
        self, request_id: str, *, tenant: str | None = None, timeout_s: float = 10.0
    ) -> CancelAck:
        """Stop a request of this tenant (or ``tenant``) sent by any client: what the cancel did.

        The request still gets exactly one answer: ``cancelled`` (:class:`Cancelled`, with the
        text and usage made until it stopped) or its result, if it finished first. An unknown,
        finished or already cancelled id changes nothing and says so in ``status``; a cancel the
        pipeline refuses (Redis away, a misaddressed reply topic) has ``status == "refused"`` and a
        ``code``; on a secured pipeline a cancel whose signature does not verify is acknowledged
        nowhere (a dead letter): it ends in :class:`DeadlineExceeded` after ``timeout_s``.
        """
        if self._closed.is_set():
            raise ClientClosed("client is closed", request_id=request_id)
        now = int(time.time() * 1000)
        try:
            cancel = CancelRequest(
                request_id=request_id,
                tenant=tenant or self.config.tenant,
                reply_to=self.reply_address,
                created_ms=now,
                deadline_ms=now + int(timeout_s * 1000),
            )
        except InvalidMessage as exc:
            raise InvalidRequest(exc.message, request_id=request_id) from exc
        future = self.router.expect_cancel(request_id, self._reply_key_for(cancel.tenant, request_id))
        try:
            await self.ingress.send(
                cancel.tenant, encode(cancel), cancel_headers(cancel), request_id, cancel.deadline_ms
            )
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            raise DeadlineExceeded(
                f"cancel not acknowledged within {timeout_s:.1f}s", request_id=request_id
            ) from None
        finally:
            self.router.forget_cancel(request_id)

    async def stream(
        self, prompt: str | Sequence[ChatMessage], **kwargs: Any
    ) -> AsyncIterator[TokenChunk | InferenceResult]:
        """Token chunks as they are generated, then the final result (always last).

        ``async for item in client.stream("Once"): ...``; errors raise the same typed
        exceptions as :meth:`generate`. Takes :meth:`build_request`'s keyword arguments.
        """
        timeout = float(kwargs.get("timeout_s") or self.config.timeout_s)
        request = msgspec.structs.replace(self.build_request(prompt, **kwargs), stream=True)
        if self._closed.is_set():
            raise ClientClosed("client is closed", request_id=request.request_id)
        deadline = time.monotonic() + timeout
        async with self._slots:
            queue = self.router.expect_stream(request.request_id, self._reply_key(request))
            try:
                await self._publish(request)
                while True:
                    try:
                        reply = await asyncio.wait_for(queue.get(), max(0.0, deadline - time.monotonic()))
                    except TimeoutError:
                        raise DeadlineExceeded(
                            f"stream not finished within {timeout:.1f}s", request_id=request.request_id
                        ) from None
                    if isinstance(reply, ErrorReply):
                        raise from_reply(reply)
                    yield reply
                    if isinstance(reply, InferenceResult):
                        return
            finally:
                self.router.forget(request.request_id)

    def _reply_key(self, request: InferenceRequest) -> str | None:
        """What the request's answers must be signed with (``verify_replies``), else None."""
        return self._reply_key_for(request.tenant, request.request_id)

    def _reply_key_for(self, tenant: str, request_id: str) -> str | None:
        if not self.config.verify_replies:
            return None
        key = self.config.signing_keys.get(tenant)
        if key is None:
            raise InvalidRequest(
                f"verify_replies needs tenant {tenant!r}'s signing key in signing_keys", request_id=request_id
            )
        return derive_reply_key(key.get_secret_value(), request_id)

    async def _publish(self, request: InferenceRequest) -> None:
        await self.ingress.publish(request)
