"""The local stack as one thing: Kafka + Redis + topics, honouring external services."""

from __future__ import annotations

from dataclasses import dataclass

from kinfer.infra.errors import ServiceUnreachable
from kinfer.infra.settings import KinferSettings
from kinfer.infra.stack.kafka import KafkaCluster
from kinfer.infra.stack.redis import RedisConfig, RedisServer, ping
from kinfer.infra.topics import TopicLayout, ensure_topics
from kinfer.schemas import TopicNames


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    address: str
    state: str
    """running, stopped, external, or unreachable."""


def kafka_cluster(settings: KinferSettings) -> KafkaCluster:
    return KafkaCluster.on_loopback(
        settings.state_dir / "kafka",
        size=settings.kafka_brokers,
        port=settings.kafka_port,
        controller_port=settings.kafka_controller_port,
        jars_dir=settings.kafka_jars_dir,
    )


def redis_server(settings: KinferSettings) -> RedisServer:
    return RedisServer(RedisConfig(state_dir=settings.state_dir / "redis", port=settings.redis_port))


def topic_layout(settings: KinferSettings) -> TopicLayout:
    return TopicLayout(
        names=TopicNames(settings.topic_prefix),
        regions=tuple(settings.region_weights),
        request_partitions=settings.request_partitions,
        dispatch_partitions=settings.dispatch_partitions,
        reply_partitions=settings.reply_partitions,
        replication=settings.topic_replication,
    )


def up(settings: KinferSettings) -> list[str]:
    """Start what is not external, then create missing topics. Idempotent."""
    if not settings.external_kafka:
        kafka_cluster(settings).start(timeout_s=settings.startup_timeout_s)
    if settings.external_redis:
        ping(settings.redis)
    else:
        redis_server(settings).start(timeout_s=settings.startup_timeout_s)
    return ensure_topics(settings.bootstrap, topic_layout(settings).specs())


def down(settings: KinferSettings) -> list[str]:
    """Stop what `up` started (never external services). Returns what was stopped."""
    stopped = []
    if not settings.external_redis and redis_server(settings).stop():
        stopped.append("redis")
    if not settings.external_kafka and kafka_cluster(settings).stop():
        stopped.append("kafka")
    return stopped


def status(settings: KinferSettings) -> list[ServiceStatus]:
    out = []
    if settings.external_kafka:
        out.append(ServiceStatus("kafka", settings.bootstrap, "external"))
    else:
        cluster = kafka_cluster(settings)
        running = cluster.running()
        for node in cluster.nodes:
            name = "kafka" if len(cluster.nodes) == 1 else f"kafka-{node.config.node_id}"
            out.append(
                ServiceStatus(name, node.config.bootstrap, "running" if node in running else "stopped")
            )
    if settings.external_redis:
        try:
            ping(settings.redis)
            state = "external"
        except ServiceUnreachable:
            state = "unreachable"
        out.append(ServiceStatus("redis", settings.redis, state))
    else:
        out.append(
            ServiceStatus(
                "redis", settings.redis, "running" if redis_server(settings).running() else "stopped"
            )
        )
    return out
