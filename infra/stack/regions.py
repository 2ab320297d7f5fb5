"""The local stack with regions as clusters (`kinfer up --regions us-west,eu-central,...`).

Each region gets what the one-cluster stack has (a KRaft cluster, a Redis, the topics, then
admission and a worker; the hub also the gateway), on ports shifted by its place in the list
(``KinferSettings.clusters``); one MirrorMaker 2 links every pair of clusters
(``infra/stack/mirror.py``). The regions' list is kept in ``<state_dir>/regions.json``, so
every later command (`status`, `down`, `submit`, ...) finds the same shape.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition

from kinfer.infra.errors import StackError, StartTimeout
from kinfer.infra.settings import KinferSettings, regions_file
from kinfer.infra.stack import local
from kinfer.infra.stack.mirror import Flow, MirrorConfig, MirrorMaker
from kinfer.schemas import TopicNames
from kinfer.schemas.kafka_client import KafkaConnection, client_config
from kinfer.schemas.serving import pool_key
from kinfer.schemas.topics import HEARTBEATS, mirrored

FRESH_S = 5.0
"""A flow whose newest heartbeat is younger than this carries records."""


def each_region(settings: KinferSettings) -> Iterator[KinferSettings]:
    """The settings of every linked region, hub first."""
    for region in settings.clusters:
        yield settings.in_region(region)


def worker_regions(settings: KinferSettings) -> dict[str, str]:
    """Worker id -> its region, from each region's own Redis (the workers' heartbeats)."""
    import redis

    out: dict[str, str] = {}
    for place in each_region(settings):
        client = redis.Redis.from_url(place.redis, decode_responses=True)
        try:
            members = client.hkeys(pool_key(settings.topic_prefix, place.region))
        finally:
            client.close()
        out |= {str(member): place.region for member in members}
    return out


def mirror_maker(settings: KinferSettings) -> MirrorMaker:
    regions = list(each_region(settings))
    return MirrorMaker(
        MirrorConfig(
            bootstraps={r.region: r.bootstrap for r in regions},
            names=TopicNames(settings.topic_prefix),
            state_dir=settings.state_root / "mirror",
            libs_dir=local.kafka_cluster(settings).libs_dir,
            replication=settings.topic_replication,
        )
    )


def link(settings: KinferSettings, regions: list[str]) -> KinferSettings:
    """Keep ``regions`` as the linked clusters of this state dir; the settings of the hub."""
    if settings.secured is not None or settings.external_kafka or settings.external_redis:
        raise StackError(
            "`kinfer up --regions` starts a local cluster and Redis per region: it runs neither "
            "secured nor on external services yet (deploy linked clusters with the Strimzi files)"
        )
    settings.state_root.mkdir(parents=True, exist_ok=True)
    regions_file(settings.state_root).write_text(json.dumps(regions))
    return settings.in_region(regions[0], clusters=regions)


def at_once(settings: KinferSettings, do: Callable[[KinferSettings], list[str]]) -> list[str]:
    """``do`` in every region at the same time (the regions share nothing; starting and
    stopping a broker is mostly waiting), the results concatenated in region order."""
    places = list(each_region(settings))
    with ThreadPoolExecutor(len(places)) as pool:
        return [item for items in pool.map(do, places) for item in items]


def up(settings: KinferSettings) -> list[str]:
    """Every region's services and topics, then MirrorMaker; waits until every flow carries
    heartbeats. Idempotent. Returns the topics created."""
    created = at_once(settings, local.up)
    mirror = mirror_maker(settings)
    mirror.start()
    wait_linked(settings, mirror, settings.startup_timeout_s)
    return created


def down(settings: KinferSettings) -> list[str]:
    """MirrorMaker, then each region's services (the stages are stopped by the caller first)."""
    stopped = ["mirror-maker"] if mirror_maker(settings).stop() else []
    return stopped + at_once(settings, lambda region: [f"{n}@{region.region}" for n in local.down(region)])


@dataclass(frozen=True)
class FlowStatus:
    flow: Flow
    heartbeat_age_s: float | None
    """How old the newest heartbeat from the source is in the target: the flow's lag (None: none yet)."""


def flow_status(settings: KinferSettings, timeout_s: float = 3.0) -> list[FlowStatus]:
    """Each flow's replication lag, read as MirrorMaker's own measure: the age of the newest
    heartbeat of its source cluster that reached its target."""
    by_region = {r.region: r.kafka for r in each_region(settings)}
    out = []
    for flow in mirror_maker(settings).config.flows():
        newest = newest_timestamp(by_region[flow.target], mirrored(flow.source, HEARTBEATS), timeout_s)
        age = None if newest is None else max(0.0, time.time() - newest / 1000)
        out.append(FlowStatus(flow, age))
    return out


def newest_timestamp(kafka: KafkaConnection, topic: str, timeout_s: float) -> int | None:
    """The timestamp (ms) of the last record of ``topic``'s partition 0, None when there is none."""
    consumer = Consumer(client_config(kafka, {"group.id": "kinfer-status", "log_level": 0}))
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=timeout_s)
        if high <= 0:
            return None
        consumer.assign([TopicPartition(topic, 0, high - 1)])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            record = consumer.poll(0.2)
            if record is not None and record.error() is None:
                return record.timestamp()[1]
        return None
    except KafkaException:
        return None
    finally:
        consumer.close()


def wait_linked(settings: KinferSettings, mirror: MirrorMaker, timeout_s: float) -> None:
    """Until every flow's heartbeats are fresh (MirrorMaker replicates everywhere)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if mirror.exited():
            raise StackError(f"MirrorMaker 2 exited during start-up; its log:\n{mirror.tail()}")
        stale = [
            f
            for f in flow_status(settings, timeout_s=1.0)
            if f.heartbeat_age_s is None or f.heartbeat_age_s > 5
        ]
        if not stale:
            return
        if time.monotonic() >= deadline:
            flows = ", ".join(f"{s.flow.source}->{s.flow.target}" for s in stale)
            raise StartTimeout(
                f"MirrorMaker 2 carries no heartbeats on {flows} after {timeout_s:g}s:\n{mirror.tail()}"
            )
        time.sleep(1.0)
