"""Replication on a 3-broker KRaft cluster that `kinfer up` starts: a broker dies, nothing is lost.

The session's single broker cannot lose a broker; this test runs its own cluster.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import IsolationLevel, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, OffsetSpec

from benchmarks.stack import busiest_leader, three_broker_env
from benchmarks.steady import pause, steady_load
from kinfer.infra.settings import KinferSettings
from kinfer.infra.stack import local
from kinfer.producers import DeadlineExceeded
from tests.conftest import JARS, Services
from tests.integration.conftest import Pipeline, assert_answered_once, kill_mid_run, kinfer

PREFIX = "replicated"


@pytest.fixture(scope="module")
def cluster_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """`kinfer up` with three brokers on ports of this module's own, shared by its tests (each
    leaves every broker running, and the requests of each carry ids of their own); always
    taken down."""
    tmp_path = tmp_path_factory.mktemp("cluster")
    env = three_broker_env(tmp_path / "state", PREFIX, JARS)
    try:
        started = kinfer("up", "--services-only", env=env)
        assert started.returncode == 0, started.stderr + started.stdout
        yield env
    finally:
        kinfer("down", env=env)


def settings_of(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> KinferSettings:
    """The settings a process started with this environment reads."""
    for key in [k for k in os.environ if k.startswith("KINFER_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("KINFER_"):
            monkeypatch.setenv(key, value)
    return KinferSettings()


def replicas(admin: AdminClient, topic: str) -> list[tuple[int, int, int]]:
    """(leader, replicas, in-sync replicas) of each partition."""
    meta = admin.list_topics(topic, timeout=10).topics[topic]
    return [(p.leader, len(p.replicas), len(p.isrs)) for p in meta.partitions.values()]


def wait_in_sync(admin: AdminClient, *topics: str) -> None:
    """Until every partition of ``topics`` has all three replicas in sync."""
    deadline = time.monotonic() + 90
    while any({i for _, _, i in replicas(admin, topic)} != {3} for topic in topics):
        assert time.monotonic() < deadline, [replicas(admin, topic) for topic in topics]
        time.sleep(1)


@pytest.mark.slow
def test_a_dead_broker_loses_no_request_and_rejoins(
    cluster_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_of(cluster_env, monkeypatch)
    admin = AdminClient({"bootstrap.servers": settings.bootstrap})
    names = local.topic_layout(settings).names
    for topic in (names.requests, names.dispatch("us-west"), names.replies, names.events):
        assert {(r, i) for _, r, i in replicas(admin, topic)} == {(3, 3)}, topic
    resource = ConfigResource(ConfigResource.Type.TOPIC, names.requests)
    config = admin.describe_configs([resource])[resource].result()
    assert config["min.insync.replicas"].value == "2"

    services = Services(settings.bootstrap, settings.redis, settings.state_dir)
    pipeline = Pipeline(services, PREFIX, tmp_path / "logs")
    try:
        pipeline.start("admission", "admission")
        for i in range(2):
            pipeline.start(f"worker{i}", "worker", "--max-wait-ms", "10")
        pipeline.wait_serving()
        victim = busiest_leader(settings, names.dispatch("us-west"))
        n = 600

        def kill_victim() -> None:
            pid = victim.process.pid()
            assert pid is not None
            os.kill(pid, signal.SIGKILL)

        config = services.settings(PREFIX).client_config(timeout_s=240)
        try:
            kill_mid_run(config, n, "b", kill_victim)
        except DeadlineExceeded as exc:  # where the unanswered wait: each group's lag, each stage
            pytest.fail(f"{exc}\n{where_requests_wait(cluster_env, pipeline)}")
        assert_answered_once(settings.bootstrap, names.replies, "b", n)
        # Nobody died with the broker: admission and both workers rode the fail-over out. The one
        # exit allowed is a worker whose transaction librdkafka left stuck (librdkafka#5456:
        # send_offsets_to_transaction can hang when the group coordinator's broker dies): it
        # must say so and exit, and every request was still answered once (checked above).
        for stage in pipeline.stages:
            stuck = stage.name.startswith("worker") and "worker.transaction_hung" in stage.tail(400)
            assert stage.alive() or stuck, stage.tail(20)
        assert pipeline.stages[0].alive() and any(s.alive() for s in pipeline.stages[1:])

        # `kinfer up` again starts only the dead node, which catches up and rejoins every ISR.
        again = kinfer("up", "--services-only", env=cluster_env)
        assert again.returncode == 0, again.stderr
        assert kinfer("status", env=cluster_env).stdout.count("running") == 4  # 3 brokers + Redis
        wait_in_sync(admin, names.requests, names.dispatch("us-west"), names.replies, names.events)
    finally:
        pipeline.stop()
        kinfer("up", "--services-only", env=cluster_env)  # failed or not, the next test needs three


def where_requests_wait(env: dict[str, str], pipeline: Pipeline) -> str:
    """`kinfer status` (each group's lag: requests not forwarded, or not answered), how far
    read_committed readers see on each reply partition (an open transaction holds its last
    stable offset back), the cluster's transactions, and the end of each stage's log."""
    settings = KinferSettings()  # the test's environment, set by settings_of
    admin = AdminClient({"bootstrap.servers": settings.bootstrap})
    replies = local.topic_layout(settings).names.replies
    parts = [
        TopicPartition(replies, p) for p in admin.list_topics(replies, timeout=10).topics[replies].partitions
    ]
    ends = {level.name: last_offsets(admin, parts, level) for level in ISOLATION_LEVELS}
    # Open transactions show as a producer's CurrentTransactionStartOffset other than -1.
    producers = [["describe-producers", "--topic", replies, "--partition", str(tp.partition)] for tp in parts]
    asked = [["list"], *producers]
    transactions = "".join(transactions_tool(settings.bootstrap, *args) for args in asked)
    status = kinfer("status", env=env)
    tails = pipeline.describe(without="127.0.0.1:")  # less the dead broker's connection errors
    return (
        f"{status.stdout}{status.stderr[-2000:]}\nreply partitions' ends: {ends}\n"
        f"transactions:\n{transactions}\n{tails}"
    )


ISOLATION_LEVELS = (IsolationLevel.READ_UNCOMMITTED, IsolationLevel.READ_COMMITTED)


def last_offsets(admin: AdminClient, parts: list[TopicPartition], level: IsolationLevel) -> dict[int, str]:
    """Each partition's end as a reader at ``level`` sees it, or why it could not be read."""
    latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
    asked = admin.list_offsets(dict.fromkeys(parts, latest), isolation_level=level, request_timeout=10)
    ends = {}
    for tp, future in asked.items():
        try:
            ends[tp.partition] = str(future.result().offset)
        except KafkaException as exc:
            ends[tp.partition] = str(exc.args[0])
    return ends


def transactions_tool(bootstrap: str, *args: str) -> str:
    """Kafka's own transactions tool (kafka-transactions.sh) on the cluster: what it says."""
    tool = ["java", "-cp", f"{JARS}/*", "org.apache.kafka.tools.TransactionsCommand"]
    ran = subprocess.run(
        [*tool, "--bootstrap-server", bootstrap, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return f"{' '.join(args)}:\n{ran.stdout}{ran.stderr[-1000:]}"


@pytest.mark.slow
def test_a_hung_leader_loses_no_request_and_answers_none_twice(
    cluster_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker leading most dispatch and reply partitions SIGSTOPped for 20 s under 20
    requests/s (its sockets stay open and answer nothing), then resumed. Admission's sends
    time out after 10 s here (30 s by default), so some forwards are given up during the hang
    and answered ``unavailable``; the broker appends them when it resumes, and the workers
    must drop them (withdrawn), not answer them a second time."""
    rate, hung_at, hung_s = 20.0, 5.0, 20.0
    settings = settings_of(cluster_env, monkeypatch)
    admin = AdminClient({"bootstrap.servers": settings.bootstrap})
    names = local.topic_layout(settings).names
    services = Services(settings.bootstrap, settings.redis, settings.state_dir)
    wait_in_sync(admin, names.requests, names.dispatch("us-west"), names.replies, names.events)
    pipeline = Pipeline(services, PREFIX, tmp_path / "logs")
    try:
        pipeline.start("admission", "admission", env={"KINFER_ADMISSION__SEND_TIMEOUT_S": "10"})
        for i in range(2):
            pipeline.start(f"worker{i}", "worker", "--max-wait-ms", "10")
        pipeline.wait_serving()
        victim = busiest_leader(settings, names.dispatch("us-west"), names.replies)
        hang, resume = pause(victim.process.pid())
        config = services.settings(PREFIX).client_config(timeout_s=240)
        seconds = hung_at + hung_s + 10
        try:
            run = steady_load(config, rate, seconds, {hung_at: hang, hung_at + hung_s: resume}, "g")
        finally:
            resume()
        print(f"broker hung {hung_s:.0f} s: {run.summary(hung_at, hung_at + hung_s)}")
        assert run.duplicates == 0
        assert_answered_once(settings.bootstrap, names.replies, "g", int(seconds * rate))
        for stage in pipeline.stages:  # as above: only a worker librdkafka left stuck may exit
            stuck = stage.name.startswith("worker") and "worker.transaction_hung" in stage.tail(400)
            assert stage.alive() or stuck, stage.tail(20)
    finally:
        pipeline.stop()
