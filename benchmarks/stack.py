"""A private Kafka + Redis for one benchmark run, on free ports, always taken down."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from kinfer.consumers.config import WorkerConfig
from kinfer.infra.demo import wait_until_serving
from kinfer.infra.settings import KinferSettings
from kinfer.infra.stack import local
from kinfer.infra.stack.kafka import KafkaNode
from kinfer.infra.stack.process import free_port, free_port_block
from kinfer.infra.stack.stages import StageProcess, running

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / ".kinfer" / "models"
"""Pulled by `make setup`; shared, so a benchmark never converts a model."""


@dataclass(frozen=True)
class BenchStack:
    settings: KinferSettings
    """Pointing at the private services as external ones (clients start nothing)."""
    env: dict[str, str]
    """The same for `kinfer` child processes."""
    logs: Path


@contextlib.contextmanager
def private_stack(model: str = "kinfer-tiny") -> Iterator[BenchStack]:
    """``model``: what workers started with ``env`` serve (pulled models come from the repo's store)."""
    with tempfile.TemporaryDirectory(prefix="kinfer-bench-") as state:
        own = KinferSettings(
            state_dir=Path(state),
            models_dir=MODELS,
            worker=WorkerConfig(model=model),
            kafka_jars_dir=REPO / ".kinfer" / "kafka" / "libs",
            kafka_port=free_port(),
            kafka_controller_port=free_port(),
            redis_port=free_port(),
        )
        local.up(own)
        try:
            external = own.model_copy(update={"bootstrap_servers": own.bootstrap, "redis_url": own.redis})
            # Benchmarks measure throughput, not the free tier's limits.
            tiers = Path(state) / "tiers.toml"
            tiers.write_text('[tenants.default]\ntier = "enterprise"\n[tenants.bench]\ntier = "enterprise"\n')
            env = {
                "KINFER_BOOTSTRAP_SERVERS": own.bootstrap,
                "KINFER_REDIS_URL": own.redis,
                "KINFER_STATE_DIR": state,
                "KINFER_ADMISSION__TIERS_FILE": str(tiers),
                "KINFER_MODELS_DIR": str(MODELS),
                "KINFER_WORKER__MODEL": model,
            }
            yield BenchStack(external, env, Path(state) / "logs")
        finally:
            local.down(own)


def three_broker_env(state: Path, prefix: str, jars: Path) -> dict[str, str]:
    """The environment of `kinfer up --services-only` for a 3-broker cluster and its Redis on
    free ports of its own, topics under ``prefix`` (3 request and dispatch partitions, 4 reply)."""
    base = free_port_block(6)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINFER_")}
    return env | {
        "KINFER_STATE_DIR": str(state),
        "KINFER_KAFKA_JARS_DIR": str(jars),
        "KINFER_KAFKA_BROKERS": "3",
        "KINFER_KAFKA_PORT": str(base),
        "KINFER_KAFKA_CONTROLLER_PORT": str(base + 1),
        "KINFER_REDIS_PORT": str(free_port()),
        "KINFER_TOPIC_PREFIX": prefix,
        "KINFER_REQUEST_PARTITIONS": "3",
        "KINFER_DISPATCH_PARTITIONS": "3",
        "KINFER_REPLY_PARTITIONS": "4",
    }


def busiest_leader(settings: KinferSettings, *topics: str) -> KafkaNode:
    """The node of the local cluster that leads the most partitions of ``topics``."""
    admin = AdminClient({"bootstrap.servers": settings.bootstrap})
    leaders = [
        p.leader for t in topics for p in admin.list_topics(t, timeout=10).topics[t].partitions.values()
    ]
    return max(local.kafka_cluster(settings).nodes, key=lambda node: leaders.count(node.config.node_id))


def end_offset(consumer: Consumer, topic: str, partition: int, timeout_s: float = 30) -> int:
    """A partition's high watermark; retried while a just-created topic's leader is not ready
    (metadata may name a leader that still answers NOT_LEADER_FOR_PARTITION)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return int(consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=5)[1])
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def worker_env(stack: BenchStack, threads: int, **settings: str) -> dict[str, str]:
    """``stack.env`` for a worker whose engine gets ``threads`` threads (0: its default),
    standing in for an accelerator of fixed size, plus ``KINFER_WORKER__<NAME>`` settings."""
    env = {**stack.env, **{f"KINFER_WORKER__{k.upper()}": v for k, v in settings.items()}}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
        env.setdefault("KINFER_WORKER__THREADS", str(threads))  # llama.cpp's threads too
    return env


@contextlib.contextmanager
def pipeline(stack: BenchStack, *, threads: int = 1, **worker_settings: str) -> Iterator[None]:
    """Admission and one worker on ``stack``, serving when entered, stopped on exit."""
    env = worker_env(stack, threads, **worker_settings)
    stages = [
        StageProcess("admission", ["admission"], stack.env, stack.logs / "admission.log"),
        StageProcess("worker", ["worker"], env, stack.logs / "worker.log"),
    ]
    with running(stages):
        asyncio.run(wait_until_serving(stack.settings))
        yield
