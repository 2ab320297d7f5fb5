"""The pipeline's topics, declared once, created idempotently with the admin API."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import structlog
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from kinfer.infra.errors import ServiceUnreachable, StackError
from kinfer.schemas.kafka_client import KafkaConnection, client_config
from kinfer.schemas.limits import MAX_MESSAGE_BYTES
from kinfer.schemas.topics import TopicNames, mirrored

log = structlog.get_logger(__name__)

HOUR_MS = 3_600_000


@dataclass(frozen=True)
class TopicSpec:
    """One topic as it must exist."""

    name: str
    partitions: int
    replication: int = 1
    retention_ms: int = 24 * HOUR_MS
    cleanup_policy: str = "delete"
    max_message_bytes: int = MAX_MESSAGE_BYTES
    extra: dict[str, str] = field(default_factory=dict)

    def configs(self) -> dict[str, str]:
        return {
            "retention.ms": str(self.retention_ms),
            "cleanup.policy": self.cleanup_policy,
            "max.message.bytes": str(self.max_message_bytes),
            # acks=all then means "on two brokers" with three replicas: one may fail, nothing is lost.
            "min.insync.replicas": str(max(1, self.replication - 1)),
            **self.extra,
        }


@dataclass(frozen=True)
class TopicLayout:
    """Partition counts and replication of the whole pipeline."""

    names: TopicNames
    regions: tuple[str, ...]
    request_partitions: int = 6
    dispatch_partitions: int = 6
    reply_partitions: int = 16
    replication: int = 1
    tenants: tuple[str, ...] = ()
    """Tenants with a private reply topic each (a secured pipeline)."""
    tenant_reply_partitions: int = 4
    home: str | None = None
    """Linked clusters: the region whose cluster this is (None: one cluster for all)."""
    peers: tuple[str, ...] = ()
    """Linked clusters: the other regions. This cluster then also holds, for each peer, the
    return topics its workers answer that peer's clients on, and MirrorMaker 2's copies of
    the peer's dispatch and return topics for this region (made here, with the partition
    counts answers are addressed by, before any stage reads them)."""

    def specs(self) -> list[TopicSpec]:
        return self._own() + self._linked()

    def _linked(self) -> list[TopicSpec]:
        if self.home is None:
            return []
        replies = [(self.names.replies, self.reply_partitions)]
        replies += [(self.names.tenant_replies(t), self.tenant_reply_partitions) for t in self.tenants]
        returned = [*replies, (self.names.events, 3)]
        r, hour = self.replication, HOUR_MS
        to, home = self.names.to_region, self.home
        specs = []
        for peer in self.peers:
            for topic, count in returned:  # answered here for the peer's clients, and the copies back
                specs.append(TopicSpec(to(peer, topic), count, r, retention_ms=hour))
                specs.append(TopicSpec(mirrored(peer, to(home, topic)), count, r, retention_ms=hour))
            dispatch = mirrored(peer, self.names.dispatch(home))
            specs.append(TopicSpec(dispatch, self.dispatch_partitions, r))
        return specs

    def _own(self) -> list[TopicSpec]:
        r = self.replication
        specs = [
            TopicSpec(self.names.requests, self.request_partitions, r),
            # Dead letters are evidence: keep them a week.
            TopicSpec(self.names.requests_dlq, 1, r, retention_ms=7 * 24 * HOUR_MS),
            TopicSpec(self.names.replies, self.reply_partitions, r, retention_ms=HOUR_MS),
            TopicSpec(self.names.events, 3, r),
        ]
        specs += [
            TopicSpec(self.names.dispatch(region), self.dispatch_partitions, r) for region in self.regions
        ]
        specs += [
            TopicSpec(self.names.tenant_replies(t), self.tenant_reply_partitions, r, retention_ms=HOUR_MS)
            for t in self.tenants
        ]
        return specs


def ensure_topics(kafka: KafkaConnection, specs: Iterable[TopicSpec], timeout_s: float = 30.0) -> list[str]:
    """Create the topics that are missing; returns the names created.

    Existing topics are left alone (their partition count is checked: a topic with
    fewer partitions than declared breaks reply-partition ownership and routing).
    """
    admin = AdminClient(client_config(kafka, {"log_level": 0}))
    try:
        existing = admin.list_topics(timeout=timeout_s).topics
    except KafkaException as exc:
        raise ServiceUnreachable(f"Kafka at {kafka} did not answer: {exc}") from exc
    wanted = list(specs)
    for spec in wanted:
        meta = existing.get(spec.name)
        if meta is not None and len(meta.partitions) < spec.partitions:
            raise StackError(
                f"topic {spec.name} has {len(meta.partitions)} partitions, fewer than the "
                f"{spec.partitions} declared; delete it or lower the setting"
            )
    missing = [
        NewTopic(s.name, num_partitions=s.partitions, replication_factor=s.replication, config=s.configs())
        for s in wanted
        if s.name not in existing
    ]
    if not missing:
        return []
    created: list[str] = []
    for name, future in admin.create_topics(missing, operation_timeout=timeout_s).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":  # a concurrent `up` made it
                raise StackError(f"creating topic {name} failed: {exc}") from exc
    _wait_for_leaders(admin, created, timeout_s)
    log.info("topics.created", topics=created)
    return created


def _wait_for_leaders(admin: AdminClient, topics: list[str], timeout_s: float) -> None:
    """Creation returns before partitions have leaders; clients that start right
    away (reply consumers reading watermarks) would fail with NOT_LEADER."""
    deadline = time.monotonic() + timeout_s
    pending = set(topics)
    while pending:
        meta = admin.list_topics(timeout=timeout_s).topics
        pending = {
            name
            for name in pending
            if name not in meta
            or not meta[name].partitions
            or any(p.leader < 0 for p in meta[name].partitions.values())
        }
        if pending and time.monotonic() > deadline:
            raise StackError(f"topics without partition leaders after {timeout_s:.0f}s: {sorted(pending)}")
        if pending:
            time.sleep(0.1)
