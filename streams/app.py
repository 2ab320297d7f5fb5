"""The Faust application: the admission agent wires ``admission.decide`` to topics.

The ingress topic is read as raw bytes and decoded inside the agent (Faust would
commit past a record its value type cannot decode and drop it). The stage is
at-least-once: every effect is keyed by request id, and each forward is acked by
the broker before Faust may commit the source offset.
"""

from __future__ import annotations

import time
from typing import Any

import faust
import structlog
from confluent_kafka.admin import AdminClient

from schemas import DeadLetter, ErrorCode, ErrorReply, TopicNames, encode, headers
from streams import metrics
from streams.admission import AdmissionLimits, Admit, Reject, decide
from streams.config import AdmissionConfig

log = structlog.get_logger(__name__)


def faust_broker_url(bootstrap: str) -> str:
    return ";".join(f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip())


def dispatch_partitions(bootstrap: str, topic: str) -> int:
    meta = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=15)
    found = meta.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        raise RuntimeError(f"dispatch topic {topic} does not exist; run `kinfer up` or `kinfer topics`")
    return len(found.partitions)


def _text_headers(raw: Any) -> dict[str, str]:
    items = raw.items() if isinstance(raw, dict) else raw
    return headers.decode_headers(items)


def create_app(config: AdmissionConfig) -> faust.App:
    names = TopicNames(config.topic_prefix)
    partitions = dispatch_partitions(config.bootstrap_servers, names.dispatch(config.region))
    limits = AdmissionLimits(config.max_prompt_bytes, config.max_new_tokens)
    app = faust.App(
        config.faust_id,
        broker=faust_broker_url(config.bootstrap_servers),
        datadir=str(config.data_dir),
        web_enabled=config.web_port > 0,
        web_port=config.web_port or 6066,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        topic_disable_leader=True,
        broker_session_timeout=config.session_timeout_s,
        broker_heartbeat_interval=max(1.0, config.session_timeout_s / 5),
        broker_rebalance_timeout=config.rebalance_timeout_s,
        broker_max_poll_interval=max(60.0, config.rebalance_timeout_s),
        key_serializer="raw",
        value_serializer="raw",
    )
    ingress = app.topic(names.requests, key_type=bytes, value_type=bytes, value_serializer="raw")

    async def send(
        topic: str,
        key: str,
        value: bytes,
        partition: int | None,
        request_id: str,
        extra: dict[str, str | int | None] | None = None,
    ) -> None:
        hdrs = headers.encode_headers_bytes({headers.REQUEST_ID: request_id, **(extra or {})})
        await app.producer.send_and_wait(topic, key.encode(), value, partition, None, hdrs)

    async def forward(decision: Admit, raw: bytes, record_headers: list[tuple[str, bytes]]) -> None:
        req = decision.request
        await app.producer.send_and_wait(
            names.dispatch(decision.region),
            req.tenant.encode(),
            raw,
            decision.partition,
            None,
            record_headers,
        )
        metrics.ADMITTED.labels(decision.region).inc()

    async def reject(decision: Reject, event: Any) -> None:
        reply = decision.reply
        if decision.address is not None:
            await send(
                decision.address.topic,
                reply.request_id,
                encode(reply),
                decision.address.partition,
                reply.request_id,
            )
        if decision.dead_letter_reason is not None:
            msg = event.message
            letter = DeadLetter(
                code=reply.code,
                reason=decision.dead_letter_reason,
                source_topic=msg.topic,
                source_partition=msg.partition,
                source_offset=msg.offset,
                original=event.value or b"",
                request_id=reply.request_id or None,
                ts_ms=int(time.time() * 1000),
            )
            await send(names.requests_dlq, reply.request_id, encode(letter), None, reply.request_id)
            metrics.DEAD_LETTERS.inc()
        metrics.REJECTED.labels(reply.code.value).inc()
        log.info(
            "admission.rejected",
            request_id=reply.request_id,
            code=reply.code.value,
            reason=reply.message,
            replied=decision.address is not None,
        )

    @app.agent(ingress, name="admission", concurrency=config.concurrency)
    async def admission(stream: Any) -> None:
        async for event in stream.events():
            started = time.perf_counter()
            raw_headers = list(
                event.message.headers.items()
                if isinstance(event.message.headers, dict)
                else event.message.headers or []
            )
            decision = decide(
                event.value,
                _text_headers(raw_headers),
                now_ms=int(time.time() * 1000),
                limits=limits,
                region=config.region,
                partitions=partitions,
            )
            metrics.DECISION_SECONDS.observe(time.perf_counter() - started)
            try:
                if isinstance(decision, Admit):
                    await forward(decision, event.value, raw_headers)
                else:
                    await reject(decision, event)
            except Exception as exc:
                log.exception("admission.record_failed", offset=event.message.offset)
                await answer_internal(decision, exc)

    async def answer_internal(decision: Admit | Reject, exc: Exception) -> None:
        """Best effort: tell the client the pipeline failed it rather than leave it waiting."""
        address = decision.request.reply_to if decision.request else getattr(decision, "address", None)
        request_id = decision.request.request_id if decision.request else ""
        if address is None:
            return
        reply = ErrorReply(request_id=request_id, code=ErrorCode.INTERNAL, message=f"admission failed: {exc}")
        try:
            await send(address.topic, request_id, encode(reply), address.partition, request_id)
        except Exception:
            log.exception("admission.internal_reply_failed", request_id=request_id)

    return app
