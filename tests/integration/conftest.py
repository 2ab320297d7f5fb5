"""Factory fixtures for integration tests: topics under a test's own prefix, and
the pipeline's stages started as a user starts them (`kinfer admission`,
`kinfer worker`)."""

from __future__ import annotations

import asyncio
import collections
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from kinfer.infra.demo import wait_until_serving
from kinfer.infra.stack import local
from kinfer.infra.stack.process import free_port
from kinfer.infra.stack.stages import StageProcess, stop_all
from kinfer.infra.topics import ensure_topics
from kinfer.producers import AsyncClient, ClientConfig, DeadlineExceeded
from kinfer.schemas import SamplingParams, TopicNames, decode_reply
from tests.conftest import JARS, Services

DEFAULT_TEST_TIERS = """
# The suite's own tenant sends thousands of requests: give it room.
[tenants.default]
tier = "enterprise"
"""


@dataclass
class Pipeline:
    services: Services
    prefix: str
    logs: Path
    stages: list[StageProcess] = field(default_factory=list)
    tiers: str = DEFAULT_TEST_TIERS
    """The admission stage's tier table (TOML); tests that test limits write their own."""

    @property
    def tiers_file(self) -> Path:
        path = self.logs / f"{self.prefix}-tiers.toml"
        if not path.exists() or path.read_text() != self.tiers:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(self.tiers)
        return path

    @property
    def names(self) -> TopicNames:
        return TopicNames(self.prefix)

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> StageProcess:
        stage = StageProcess(
            name,
            list(args),
            {
                **self.services.env(self.prefix),
                "KINFER_ADMISSION__TIERS_FILE": str(self.tiers_file),
                **(env or {}),
            },
            self.logs / f"{name}-{len(self.stages)}.log",
        )
        self.stages.append(stage)
        return stage

    def wait_serving(self, timeout_s: float = 120.0) -> None:
        try:
            asyncio.run(wait_until_serving(self.services.settings(self.prefix), timeout_s))
        except Exception:
            print(self.describe())
            raise

    def describe(self, lines: int = 40, without: str | None = None) -> str:
        """Each stage, alive or not, and the last ``lines`` of its log (less the lines that
        contain ``without``: a dead broker's connection errors, say)."""

        def tail(stage: StageProcess) -> str:
            kept = [line for line in stage.tail(1000).splitlines() if without is None or without not in line]
            return "\n".join(kept[-lines:])

        return "\n".join(f"--- {s.name} (alive={s.alive()}):\n{tail(s)}" for s in self.stages)

    def stop(self) -> None:
        stop_all(self.stages)


def wait_for_regions(pipeline: Pipeline, regions: Sequence[str], timeout_s: float = 120.0) -> None:
    """Until an active worker heartbeats in each region, and admission (which reads the
    heartbeats once a second) has seen them: else it routes a region's users around it."""
    from kinfer.consumers.pool.registry import PoolRegistry

    registries = [PoolRegistry(pipeline.services.redis_url, pipeline.prefix, r) for r in regions]

    def all_active() -> bool:
        now_ms = int(time.time() * 1000)
        return all(
            any(b.state == "active" and b.live(now_ms) for b in registry.heartbeats().values())
            for registry in registries
        )

    wait_for(all_active, timeout_s, f"active workers in {', '.join(regions)}")
    time.sleep(1.5)


def serving(make_pipeline: Callable[[str], Pipeline], prefix: str, workers: int = 1) -> Pipeline:
    """Admission and ``workers`` kinfer-tiny workers (10 ms batch wait), answering."""
    pipeline = make_pipeline(prefix)
    pipeline.start("admission", "admission")
    for i in range(workers):
        pipeline.start(f"worker{i}", "worker", "--max-wait-ms", "10")
    pipeline.wait_serving()
    return pipeline


def new_pipeline(services: Services, prefix: str, logs: Path) -> Pipeline:
    """A pipeline under its own topic prefix (its topics made); the caller stops it."""
    settings = services.settings(prefix, reply_partitions=4, dispatch_partitions=3, request_partitions=3)
    ensure_topics(settings.kafka, local.topic_layout(settings).specs())
    return Pipeline(services, prefix, logs)


@pytest.fixture
def make_pipeline(services: Services, tmp_path: Path) -> Iterator[Callable[[str], Pipeline]]:
    made: list[Pipeline] = []

    def make(prefix: str) -> Pipeline:
        made.append(new_pipeline(services, prefix, tmp_path / "logs"))
        return made[-1]

    yield make
    for pipeline in made:
        pipeline.stop()


def start_gateway(pipeline: Pipeline, api_keys: dict[str, str], env: dict[str, str] | None = None) -> str:
    """`kinfer gateway` on a free port in front of ``pipeline``; its base URL once it answers."""
    import json

    import httpx

    port = free_port()
    gateway_env = {**(env or {}), "KINFER_GATEWAY__API_KEYS": json.dumps(api_keys)}
    gateway_env.setdefault("KINFER_GATEWAY__TIMEOUT_S", "4")
    pipeline.start("gateway", "gateway", "--port", str(port), env=gateway_env)
    base = f"http://127.0.0.1:{port}/v1"
    key = next(iter(api_keys.values()))
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/models", headers={"Authorization": f"Bearer {key}"}, timeout=2).is_success:
                return base
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, pipeline.stages[-1].tail(40)
        time.sleep(0.3)


def wait_for_members(pipeline: Pipeline, group: str, topic: str, members: int, timeout_s: float = 90) -> None:
    """Until ``members`` consumers of ``group`` each own partitions of ``topic``."""
    admin = AdminClient({"bootstrap.servers": pipeline.services.bootstrap})
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            described = admin.describe_consumer_groups([group], request_timeout=5)[group].result()
        except KafkaException:  # the group's coordinator is still loading
            assert time.monotonic() < deadline, f"{group} never became describable"
            continue
        owners = [
            m
            for m in described.members
            if m.assignment and any(tp.topic == topic for tp in m.assignment.topic_partitions)
        ]
        if len(owners) >= members and str(described.state).endswith("STABLE"):
            return
        assert time.monotonic() < deadline, f"{group}: {len(owners)} of {members} members own {topic}"
        time.sleep(0.5)


def consumed_to_end(bootstrap: str, group: str, topic: str) -> bool:
    """Whether ``group`` has committed every partition of ``topic`` up to its current end."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        parts = [TopicPartition(topic, p) for p in meta.partitions]
        committed = {tp.partition: tp.offset for tp in consumer.committed(parts, timeout=10)}
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in parts}
        return all(ends[p] == 0 or committed[p] >= ends[p] for p in ends)
    finally:
        consumer.close()


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str, every_s: float = 0.2) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every_s)


async def until(condition: Callable[[], bool], timeout_s: float, what: str, every_s: float = 0.2) -> None:
    """``wait_for`` inside a running event loop (the client's reply consumer keeps running)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(every_s)


def families(port: int) -> list[Metric]:
    """Every metric a process declares on its /metrics (with or without samples yet)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return list(text_string_to_metric_families(text))


def scrape(port: int) -> list[Sample]:
    """Every sample a process exports on its /metrics, parsed by prometheus_client."""
    return [sample for family in families(port) for sample in family.samples]


def metric(port: int, name: str, **labels: str) -> float:
    """One sample of a process's /metrics (0 when absent)."""
    for sample in scrape(port):
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
            return float(sample.value)
    return 0.0


def read_all(
    bootstrap: str, topic: str, timeout_s: float = 20.0
) -> list[tuple[bytes | None, dict[str, bytes]]]:
    """Every committed record of a topic, from the beginning to its current end.

    Ends are compared with the consumer's position, not record offsets: the last
    offset of a transactional partition is a commit marker, never delivered.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "inspect",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s).topics[topic]
        parts = [TopicPartition(topic, p, 0) for p in meta.partitions]
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=timeout_s)[1] for tp in parts}
        consumer.assign(parts)
        out: list[tuple[bytes | None, dict[str, bytes]]] = []
        deadline = time.monotonic() + timeout_s
        while True:
            record = consumer.poll(0.2)
            if record is not None and not record.error():
                out.append((record.value(), dict(record.headers() or [])))
                continue
            positions = {tp.partition: tp.offset for tp in consumer.position(parts)}
            if all(ends[p] == 0 or positions[p] >= ends[p] for p in ends):
                return out
            assert time.monotonic() < deadline, f"timed out reading {topic}: {positions} of {ends}"
    finally:
        consumer.close()


def kill_mid_run(config: ClientConfig, n: int, id_prefix: str, kill: Callable[[], None]) -> int:
    """Send ``n`` requests at once, call ``kill`` once a quarter are answered, and wait for all.

    Returns how many were answered when ``kill`` ran; asserts every call got its own answer
    and the client saw no duplicate.
    """

    async def scenario() -> int:
        async with AsyncClient(config) as client:
            sampling = SamplingParams(max_tokens=4)
            tasks = [
                asyncio.create_task(
                    client.generate(f"{id_prefix} {i}", sampling=sampling, request_id=f"{id_prefix}{i}")
                )
                for i in range(n)
            ]
            while sum(t.done() for t in tasks) < n // 4:
                await asyncio.sleep(0.05)
            kill()
            done_at_kill = sum(t.done() for t in tasks)
            try:
                results = await asyncio.gather(*tasks)
            except DeadlineExceeded as exc:  # which ones, of all: a run of ids, or scattered?
                await asyncio.wait(tasks)
                unanswered = [i for i, t in enumerate(tasks) if t.exception() is not None]
                exc.add_note(f"{len(unanswered)} of {n} unanswered: {unanswered}; {client.router.stats}")
                raise
            assert [r.request_id for r in results] == [f"{id_prefix}{i}" for i in range(n)]
            assert client.router.stats.duplicate_answers == 0
            return done_at_kill

    done_at_kill = asyncio.run(scenario())
    assert done_at_kill < n, "the kill came too late to test anything"
    return done_at_kill


def assert_answered_once(bootstrap: str, replies_topic: str, id_prefix: str, n: int) -> None:
    """Every committed reply on the topic: exactly one per request id ``<id_prefix><i>``."""
    expected = {f"{id_prefix}{i}" for i in range(n)}
    replies = [decode_reply(v or b"") for v, _ in read_all(bootstrap, replies_topic, timeout_s=60)]
    per_id = collections.Counter(r.request_id for r in replies if r.request_id in expected)
    assert len(per_id) == n and set(per_id.values()) == {1}, per_id.most_common(3)


def kinfer(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kinfer.infra.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def own_stack_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for a stack of this test's own (own ports, own state dir); always taken down."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINFER_")}
    env.update(
        {
            "KINFER_STATE_DIR": str(tmp_path / "state"),
            "KINFER_KAFKA_JARS_DIR": str(JARS),
            "KINFER_KAFKA_PORT": str(free_port()),
            "KINFER_KAFKA_CONTROLLER_PORT": str(free_port()),
            "KINFER_REDIS_PORT": str(free_port()),
        }
    )
    yield env
    kinfer("down", env=env)
