"""The Faust application: agents and timers wire the admission controller to Kafka.

- ``admission`` reads ``<prefix>.requests`` as raw bytes and decodes inside the
  agent (Faust would commit past a record its value type cannot decode and drop
  it). At-least-once: each produced record is acked before Faust may commit the
  source offset; every effect is keyed by request id.
- ``outcomes`` reads ``<prefix>.events`` in small batches: breakers and token settlement.
- timers pump the delay queue, refresh the breaker view, and reload the tier file.
Nothing blocking runs on the loop: Redis is used through ``redis.asyncio``.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Mapping
from typing import Any

import faust
import structlog
from confluent_kafka.admin import AdminClient
from faust.transport.drivers import aiokafka as faust_aiokafka
from redis.asyncio import Redis as AsyncRedis

from kinfer.schemas import TopicNames, encode, headers
from kinfer.schemas.kafka_client import KafkaConnection, KafkaSecurity, client_config
from kinfer.schemas.redis_bounds import DECISION_S, PROBE_S, bounded
from kinfer.schemas.signing import REPLY_SIGNATURE, sign_reply
from kinfer.streams import metrics
from kinfer.streams.admission import AdmissionLimits
from kinfer.streams.answer_ledger import AnswerLedger
from kinfer.streams.breakers.state import BreakerConfig
from kinfer.streams.breakers.store import BreakerStore
from kinfer.streams.cancels import CancelDesk
from kinfer.streams.config import AdmissionConfig
from kinfer.streams.controller import AdmissionController
from kinfer.streams.delay_queue import DelayQueue
from kinfer.streams.effects import Answer, Effect, Forward, Letter, Remember, Withdraw
from kinfer.streams.identity import Authenticator, Freshness, TenantKeys
from kinfer.streams.limits.limiter import RedisLimiter
from kinfer.streams.limits.tiers import ReloadingTierTable
from kinfer.streams.outcomes import OutcomeRecorder
from kinfer.streams.redis_health import RedisHealth
from kinfer.streams.redis_pipelining import PipeliningRedis
from kinfer.streams.reply_topics import ReplyTopics
from kinfer.streams.request_store import RedisRequestStore
from kinfer.streams.residency import ResidencyGate
from kinfer.streams.routing.links import LinkView, PeerLinks
from kinfer.streams.routing.regions import RegionRouter
from kinfer.streams.seams import wall_ms
from kinfer.streams.stale_leader import refresh_metadata_on_stale_leader

log = structlog.get_logger(__name__)


class Undeliverable(Exception):
    """An answer whose address no answer can reach."""


class IdempotentProducer(faust_aiokafka.Producer):
    """Faust's producer turns idempotence on only in its (buggy) exactly-once mode; without
    it, a send retried while a broker fails over can write a forward or a reply twice."""

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "enable_idempotence": True}


def faust_broker_url(kafka: KafkaConnection) -> str:
    hosts = kafka.bootstrap_servers.split(",")
    return ";".join(f"kafka://{host.strip()}" for host in hosts if host.strip())


def faust_credentials(security: KafkaSecurity) -> faust.auth.Credentials | None:
    """The same connection as the confluent-kafka clients', in aiokafka's terms."""
    context = None
    if security.tls:
        context = ssl.create_default_context(cafile=str(security.ca_file) if security.ca_file else None)
        if security.cert_file and security.key_file:
            context.load_cert_chain(str(security.cert_file), str(security.key_file))
    if security.sasl:
        assert security.password is not None  # KafkaSecurity checks it
        return faust.SASLCredentials(
            username=security.username,
            password=security.password.get_secret_value(),
            ssl_context=context,
            mechanism=security.sasl_mechanism,
        )
    return faust.SSLCredentials(context) if context is not None else None


def dispatch_partitions(kafka: KafkaConnection, names: TopicNames, regions: list[str]) -> dict[str, int]:
    meta = AdminClient(client_config(kafka)).list_topics(timeout=15).topics
    counts = {}
    for region in regions:
        topic = meta.get(names.dispatch(region))
        if topic is None or not topic.partitions:
            raise RuntimeError(
                f"dispatch topic {names.dispatch(region)} does not exist; run `kinfer up` or `kinfer topics`"
            )
        counts[region] = len(topic.partitions)
    return counts


def create_app(config: AdmissionConfig) -> faust.App:
    refresh_metadata_on_stale_leader()
    names = TopicNames(config.topic_prefix)
    # One immediate retry replaces a stale pooled connection (after a Redis restart); anything
    # longer is an outage, which RedisHealth handles. redis-py's default backoff would hold an
    # admission call for seconds and could end after recovery, marking Redis down again.
    redis = PipeliningRedis.from_url(config.redis_url, **bounded(DECISION_S, asyncio=True))
    probe = AsyncRedis.from_url(config.redis_url, **bounded(PROBE_S, asyncio=True))
    regions = list(config.region_weights)
    breaker_cfg = BreakerConfig(
        window_s=config.breaker_window_s,
        min_calls=config.breaker_min_calls,
        error_rate=config.breaker_error_rate,
        open_s=config.breaker_open_s,
        probes=config.breaker_probes,
    )
    limiter = RedisLimiter(redis, names.prefix)
    links = PeerLinks(config.kafka, LinkView(config.peer_regions, config.peer_down_after_s, wall_ms))
    breakers = BreakerStore(redis, names.prefix, breaker_cfg)
    tiers = ReloadingTierTable(config.tiers_file)
    authenticator = Authenticator(
        names,
        TenantKeys(redis, names.prefix) if config.require_signatures else None,
        config.private_replies,
        Freshness(int(config.signed_max_age_s * 1000), int(config.clock_skew_s * 1000)),
    )
    controller = AdmissionController(
        names=names,
        limits=AdmissionLimits(config.max_prompt_bytes, config.max_new_tokens),
        router=RegionRouter(config.region_weights, dispatch_partitions(config.kafka, names, regions)),
        tiers=tiers,
        limiter=limiter,
        breakers=breakers,
        delay=DelayQueue(redis, names.prefix),
        store=RedisRequestStore(redis, names.prefix),
        reply_topics=ReplyTopics(config.kafka, names),
        ledger=AnswerLedger(config.kafka),
        authenticator=authenticator,
        cancels=CancelDesk(redis, names.prefix, authenticator),
        residency=ResidencyGate(config.region, linked=bool(config.peer_regions)),
        links=links.view if config.peer_regions else None,
        health=RedisHealth(probe=probe.ping),
    )
    outcomes = OutcomeRecorder(
        redis=redis,
        prefix=names.prefix,
        breakers=breakers,
        limiter=limiter,
        tiers=tiers,
        health=controller.health,
        clock_ms=controller.clock_ms,
    )
    app = faust.App(
        config.faust_id,
        broker=faust_broker_url(config.kafka),
        broker_credentials=faust_credentials(config.kafka.security),
        datadir=str(config.data_dir),
        web_enabled=config.web_port > 0,
        web_port=config.web_port or 6066,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # aiokafka expires an unsent batch at the same bound the agent waits, so a forward
        # replaced by its fallback answer is not also delivered later.
        producer_request_timeout=config.send_timeout_s,
        topic_disable_leader=True,
        broker_session_timeout=config.session_timeout_s,
        broker_heartbeat_interval=max(1.0, config.session_timeout_s / 5),
        broker_rebalance_timeout=config.rebalance_timeout_s,
        broker_max_poll_interval=max(60.0, config.rebalance_timeout_s),
        key_serializer="raw",
        value_serializer="raw",
    )
    app.transport.Producer = IdempotentProducer  # type: ignore[misc]
    ingress = app.topic(names.requests, key_type=bytes, value_type=bytes, value_serializer="raw")
    # Outcomes of what this region's workers answered, and (linked clusters) of what each peer
    # answered for this region's clients, mirrored back.
    event_topics = names.returns(config.region, names.events, config.peer_regions)
    events = app.topic(*event_topics, key_type=bytes, value_type=bytes, value_serializer="raw")

    async def send(effect: Effect) -> None:
        """One effect, acked by the broker; raises when it cannot be."""
        if isinstance(effect, Forward):
            await app.producer.send_and_wait(
                effect.topic, effect.key, effect.value, effect.partition, None, effect.headers
            )
        elif isinstance(effect, Answer):
            if (why := await controller.reply_topics.why_unanswerable(effect.address)) is not None:
                raise Undeliverable(why)
            rid, value = effect.reply.request_id, encode(effect.reply)
            signature = sign_reply(effect.reply_key, value) if effect.reply_key else None
            hdrs = headers.encode_headers_bytes({headers.REQUEST_ID: rid, REPLY_SIGNATURE: signature})
            await app.producer.send_and_wait(
                effect.address.topic, rid.encode(), value, effect.address.partition, None, hdrs
            )
        elif isinstance(effect, Remember):
            await controller.marks.remember(effect)
        elif isinstance(effect, Withdraw):
            await controller.marks.withdraw(effect)
        else:
            rid = effect.letter.request_id or ""
            hdrs = headers.encode_headers_bytes({headers.REQUEST_ID: rid})
            letter = encode(effect.letter)
            await app.producer.send_and_wait(names.requests_dlq, rid.encode(), letter, None, None, hdrs)
            metrics.DEAD_LETTERS.inc()

    async def deliver(
        effects: list[Effect], value: bytes | None = None, source: tuple[str, int, int] = ("", -1, -1)
    ) -> None:
        """Carry out a decision; never raises, and never waits on one record for long. What
        cannot be delivered is replaced by what ``controller.undeliverable`` says, once."""
        has_letter = any(isinstance(e, Letter) for e in effects)  # one dead letter per record
        for effect in effects:
            try:
                await asyncio.wait_for(send(effect), config.send_timeout_s)
                continue
            except Exception as exc:  # noqa: BLE001 - any failure of this record's effect is replaced below
                why = f"could not deliver {type(effect).__name__.lower()}: {type(exc).__name__}: {exc}"
                log.warning("admission.undeliverable", effect=type(effect).__name__, error=why)
            metrics.UNDELIVERABLE.labels(type(effect).__name__.lower()).inc()
            try:
                for instead in controller.undeliverable(effect, why, value, source):
                    if not (has_letter and isinstance(instead, Letter)):
                        await asyncio.wait_for(send(instead), config.send_timeout_s)
            except Exception:
                log.exception("admission.fallback_lost", effect=type(effect).__name__, source=source)

    @app.agent(ingress, name="admission", concurrency=config.concurrency)
    async def admission(stream: Any) -> None:
        async for event in stream.events():
            msg = event.message
            source = (msg.topic, msg.partition, msg.offset)
            raw_headers: list[tuple[str, bytes]] = []
            try:
                hdrs = msg.headers
                raw_headers = list(hdrs.items() if isinstance(hdrs, dict) else hdrs or [])
                started = time.perf_counter()
                effects = await controller.admit(event.value, raw_headers, source)
                metrics.DECISION_SECONDS.observe(time.perf_counter() - started)
            except Exception as exc:  # a bug in one decision must not stop the agent
                log.exception("admission.record_failed", topic=msg.topic, offset=msg.offset)
                effects = controller.failed(event.value, raw_headers, source, exc)
            await deliver(effects, event.value, source)

    @app.agent(events, name="outcomes")
    async def record_outcomes(stream: Any) -> None:
        async for batch in stream.take(500, within=0.2):
            await outcomes.process(batch)

    @app.timer(interval=0.05)
    async def pump_delay_queue() -> None:
        await controller.pump_delay_queue(deliver)

    @app.timer(interval=0.25)
    async def refresh_breakers() -> None:
        await controller.refresh_breakers()

    @app.timer(interval=1.0)
    async def refresh_served() -> None:
        await controller.refresh_served()

    @app.timer(interval=0.5)
    async def watch_links() -> None:
        await asyncio.to_thread(links.poll)
        for peer in config.peer_regions:
            age = links.view.lag_ms(peer)
            metrics.PEER_HEARTBEAT_AGE.labels(peer).set(float("inf") if age is None else age / 1000)

    @app.timer(interval=5.0)
    async def reload_tiers() -> None:
        controller.tiers.reload()

    return app
