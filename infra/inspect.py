"""What `kinfer status` reports about a running pipeline, beyond its processes:
consumer groups (members, lag per topic), live workers and their models, and
open circuit breakers."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import redis
from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka import admin as kafka_admin
from confluent_kafka.admin import AdminClient
from redis.asyncio import Redis as AsyncRedis

from kinfer.infra.settings import KinferSettings
from kinfer.schemas import TopicNames
from kinfer.schemas.kafka_client import client_config
from kinfer.schemas.serving import WorkerHeartbeat, decode_heartbeats, pool_key
from kinfer.streams.breakers.state import BreakerConfig, State
from kinfer.streams.breakers.store import BreakerStore

TIMEOUT_S = 3.0


@dataclass(frozen=True)
class GroupStatus:
    group: str
    topic: str
    state: str
    members: int
    lag: int | None
    """Records on ``topic`` not yet committed by the group; None when unknown."""


@dataclass(frozen=True)
class PipelineReport:
    groups: list[GroupStatus] = field(default_factory=list)
    workers: dict[str, dict[str, WorkerHeartbeat]] = field(default_factory=dict)
    """Region -> worker id -> its last heartbeat."""
    open_breakers: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """What could not be read, and why."""


def report(settings: KinferSettings) -> PipelineReport:
    names = TopicNames(settings.topic_prefix)
    out = PipelineReport()
    consumed = [(names.admission_group, names.requests)] + [
        (names.worker_group(r), names.dispatch(r)) for r in settings.served_here
    ]
    try:
        out.groups.extend(_groups(AdminClient(client_config(settings.kafka)), consumed))
    except KafkaException as exc:
        out.problems.append(f"Kafka at {settings.kafka}: {exc.args[0]}")
    try:
        out.workers.update(_workers(settings, names))
        out.open_breakers.extend(asyncio.run(_open_breakers(settings)))
    except (redis.RedisError, OSError) as exc:
        out.problems.append(f"Redis at {settings.redis}: {exc}")
    return out


def _groups(admin: AdminClient, consumed: list[tuple[str, str]]) -> list[GroupStatus]:
    described = admin.describe_consumer_groups([g for g, _ in consumed], request_timeout=TIMEOUT_S)
    rows = []
    for group, topic in consumed:
        try:
            info = described[group].result()
            state, members = str(info.state.name).lower(), len(info.members)
        except KafkaException:
            state, members = "none", 0
        rows.append(GroupStatus(group, topic, state, members, _lag(admin, group, topic)))
    return rows


def _lag(admin: AdminClient, group: str, topic: str) -> int | None:
    try:
        meta = admin.list_topics(topic, timeout=TIMEOUT_S).topics[topic]
        parts = [TopicPartition(topic, p) for p in meta.partitions]
        latest = kafka_admin.OffsetSpec.latest()  # type: ignore[attr-defined,no-untyped-call]
        ends = admin.list_offsets(dict.fromkeys(parts, latest), request_timeout=TIMEOUT_S)
        committed = admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group, parts)], request_timeout=TIMEOUT_S
        )[group].result()
    except (KafkaException, KeyError):
        return None
    done: dict[int, int] = {tp.partition: max(tp.offset, 0) for tp in committed.topic_partitions}
    return sum(max(0, int(f.result().offset) - done.get(tp.partition, 0)) for tp, f in ends.items())


def _workers(settings: KinferSettings, names: TopicNames) -> dict[str, dict[str, WorkerHeartbeat]]:
    client = redis.Redis.from_url(settings.redis, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S)
    now = int(time.time() * 1000)
    try:
        return {
            region: {
                w: hb
                for w, hb in decode_heartbeats(client.hgetall(pool_key(names.prefix, region))).items()
                if hb.live(now)
            }
            for region in settings.served_here
        }
    finally:
        client.close()


async def _open_breakers(settings: KinferSettings) -> list[str]:
    client = AsyncRedis.from_url(settings.redis, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S)
    try:
        store = BreakerStore(client, settings.topic_prefix, BreakerConfig())
        snapshots = await store.load_all()
    finally:
        await client.aclose()
    return sorted(name for name, snap in snapshots.items() if snap.state is not State.CLOSED)
