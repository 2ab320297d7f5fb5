"""Putting records on the ingress topic: one idempotent producer, polled on its own thread;
each record keyed by its tenant (admission sees a tenant's records in order) and signed when
the tenant's key is known (it proves the tenant to a secured pipeline)."""

from __future__ import annotations

import asyncio
import threading

from confluent_kafka import KafkaError, Message, Producer

from kinfer.producers.config import ClientConfig
from kinfer.producers.errors import InvalidRequest, Unavailable
from kinfer.schemas import InferenceRequest, TopicNames, encode
from kinfer.schemas.codec import request_headers
from kinfer.schemas.headers import KafkaHeaders
from kinfer.schemas.kafka_client import client_config
from kinfer.schemas.limits import MAX_MESSAGE_BYTES
from kinfer.schemas.signing import SIGNATURE, sign


class Ingress:
    def __init__(self, config: ClientConfig, topics: TopicNames) -> None:
        self.config = config
        self.topics = topics
        self._producer = Producer(
            client_config(
                config.kafka,
                {
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": config.linger_ms,
                    "message.max.bytes": MAX_MESSAGE_BYTES,
                },
            )
        )
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    def start(self) -> None:
        """Serve delivery reports from now on."""
        self._poller = threading.Thread(target=self._poll, name="kinfer-producer", daemon=True)
        self._poller.start()

    async def close(self) -> None:
        """Deliver what is queued (up to 10 s), then stop polling."""
        await asyncio.to_thread(self._producer.flush, 10)
        self._stop.set()
        if self._poller is not None:
            await asyncio.to_thread(self._poller.join, 5)

    async def publish(self, request: InferenceRequest) -> None:
        value = encode(request)
        if len(value) > MAX_MESSAGE_BYTES:
            raise InvalidRequest(
                f"encoded request is {len(value)} bytes; the limit is {MAX_MESSAGE_BYTES}",
                request_id=request.request_id,
            )
        await self.send(
            request.tenant, value, request_headers(request), request.request_id, request.deadline_ms
        )

    async def send(
        self, tenant: str, value: bytes, hdrs: KafkaHeaders, request_id: str, deadline_ms: int | None
    ) -> None:
        """One record, acknowledged by Kafka (:class:`Unavailable` when it is not)."""
        loop = asyncio.get_running_loop()
        delivered: asyncio.Future[None] = loop.create_future()

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            loop.call_soon_threadsafe(_settle, delivered, err)

        key = self.config.signing_keys.get(tenant)
        if key is not None:
            hdrs.append((SIGNATURE, sign(key.get_secret_value(), request_id, tenant, deadline_ms, value)))
        while True:
            try:
                self._producer.produce(
                    self.topics.requests,
                    value=value,
                    key=tenant.encode(),
                    headers=hdrs,
                    on_delivery=on_delivery,
                )
                break
            except BufferError:  # local queue full: wait for deliveries (backpressure)
                await asyncio.sleep(0.01)
        await delivered

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)


def _settle(future: asyncio.Future[None], err: KafkaError | None) -> None:
    if future.done():
        return
    if err is None:
        future.set_result(None)
    else:
        future.set_exception(Unavailable(f"request not accepted by Kafka: {err}"))
