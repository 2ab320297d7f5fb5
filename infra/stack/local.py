"""The local stack as one thing: Kafka + Redis + topics, honouring external services."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from kinfer.infra.acls import ensure_acls, ensure_scram_users, role_bindings, tenant_bindings
from kinfer.infra.errors import ServiceUnreachable
from kinfer.infra.settings import KinferSettings
from kinfer.infra.stack.kafka import KafkaCluster
from kinfer.infra.stack.redis import RedisConfig, RedisServer, RedisTls, ping, without_password
from kinfer.infra.stack.secure import ROLES, kafka_user, tenant_user
from kinfer.infra.topics import TopicLayout, ensure_topics
from kinfer.schemas import TopicNames
from kinfer.streams.identity import tenant_keys_key


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    address: str
    state: str
    """running, stopped, external, or unreachable."""


def kafka_cluster(settings: KinferSettings) -> KafkaCluster:
    secured = settings.secured.broker_security() if settings.secured else None
    return KafkaCluster.on_loopback(
        settings.state_dir / "kafka",
        size=settings.kafka_brokers,
        port=settings.kafka_port,
        controller_port=settings.kafka_controller_port,
        jars_dir=settings.kafka_jars_dir,
        secured=secured,
    )


def redis_server(settings: KinferSettings) -> RedisServer:
    users, tls = None, None
    if (files := settings.secured) is not None:  # ACL users, TLS only
        roles = files.credentials().roles
        users = {kafka_user(role): roles[role].get_secret_value() for role in ROLES}
        tls = RedisTls(files.cert_file, files.key_file, files.ca_file)
    config = RedisConfig(settings.state_dir / "redis", settings.redis_port, users, tls)
    return RedisServer(config)


def topic_layout(settings: KinferSettings) -> TopicLayout:
    tenants = tuple(settings.secured.credentials().tenants) if settings.secured else ()
    return TopicLayout(
        names=TopicNames(settings.topic_prefix),
        regions=tuple(settings.routed_weights),
        request_partitions=settings.request_partitions,
        dispatch_partitions=settings.dispatch_partitions,
        reply_partitions=settings.reply_partitions,
        replication=settings.topic_replication,
        tenants=tenants,
        home=settings.region if settings.linked else None,
        peers=settings.peers,
    )


def up(settings: KinferSettings) -> list[str]:
    """Start what is not external, then create missing topics (and on a secured stack its
    users, ACLs and tenant keys). Idempotent."""
    if settings.secured is not None:
        settings.secured.ensure()
    if not settings.external_kafka:
        kafka_cluster(settings).start(timeout_s=settings.startup_timeout_s)
    if settings.external_redis:
        ping(settings.redis)
    else:
        redis_server(settings).start(timeout_s=settings.startup_timeout_s)
    created = ensure_topics(settings.kafka, topic_layout(settings).specs())
    if settings.secured is not None:
        secure_cluster(settings)
    return created


def secure_cluster(settings: KinferSettings) -> None:
    """Every role's and tenant's SCRAM user, their ACLs, and the tenants' signing keys in Redis."""
    assert settings.secured is not None
    creds = settings.secured.credentials()
    users = {kafka_user(role): creds.roles[role].get_secret_value() for role in ROLES if role != "admin"}
    users |= {tenant_user(t): s.password.get_secret_value() for t, s in creds.tenants.items()}
    ensure_scram_users(settings.kafka, users)
    names = TopicNames(settings.topic_prefix)
    bindings = role_bindings(names, settings.admission_config().faust_id)
    for tenant in creds.tenants:
        bindings += tenant_bindings(names, tenant)
    ensure_acls(settings.kafka, bindings)
    store_tenant_keys(settings, {t: s.key.get_secret_value() for t, s in creds.tenants.items()})


def store_tenant_keys(settings: KinferSettings, keys: dict[str, str]) -> None:
    """Each tenant's current signing key, where admission reads it (keeps a ``previous`` one)."""
    client = redis.Redis.from_url(settings.redis)
    try:
        for tenant, key in keys.items():
            client.hset(tenant_keys_key(settings.topic_prefix, tenant), "current", key)
    finally:
        client.close()


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
        out.append(ServiceStatus("redis", without_password(settings.redis), state))
    else:
        out.append(
            ServiceStatus(
                "redis",
                without_password(settings.redis),
                "running" if redis_server(settings).running() else "stopped",
            )
        )
    return out
