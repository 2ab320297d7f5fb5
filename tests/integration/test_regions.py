"""Regions as clusters: `kinfer up --regions` starts a KRaft cluster and a Redis per region,
MirrorMaker 2 between them, admission and a worker per region; requests cross clusters only
through MirrorMaker, a resident tenant's records stay in its region, and a spoke whose whole
cluster dies is routed around, its held requests answered once after it returns.

One linked stack for the module (three clusters take a minute to start); the death test runs
last and leaves the stack as it found it.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from kinfer.infra.settings import KinferSettings
from kinfer.infra.stack import local, pipeline
from kinfer.infra.stack.process import free_port, free_port_block
from kinfer.infra.stack.regions import worker_regions
from kinfer.producers.client import AsyncClient
from kinfer.producers.errors import InvalidRequest
from kinfer.schemas import (
    CancelAck,
    InferenceResult,
    InvalidMessage,
    SamplingParams,
    TopicNames,
)
from kinfer.schemas.codec import decode_reply_record, decode_request
from kinfer.schemas.topics import mirrored
from kinfer.streams.routing.regions import DEFAULT_WEIGHTS
from kinfer.streams.routing.ring import HashRing
from tests.conftest import JARS, MODELS, SUITE_MODEL
from tests.integration.conftest import kinfer, read_all, until

REGIONS = ("us-west", "eu-central", "ap-southeast")
TIERS = """
[tenants.alice]
tier = "pro"
residency = "eu"

[tenants.acme]
tier = "pro"
"""


@dataclass(frozen=True)
class Linked:
    env: dict[str, str]

    def settings(self, region: str) -> KinferSettings:
        """What a process of ``region`` started with this environment uses."""
        saved = dict(os.environ)
        try:
            os.environ.clear()
            os.environ.update(self.env)
            return KinferSettings(region=region)
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def client(self, region: str, tenant: str = "acme") -> AsyncClient:
        return AsyncClient(self.settings(region).client_config(tenant=tenant, timeout_s=180))

    def workers(self) -> dict[str, str]:
        """Worker id -> region."""
        return worker_regions(self.settings("us-west"))


@pytest.fixture(scope="module")
def linked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Linked]:
    state = tmp_path_factory.mktemp("regions")
    (state / "tiers.toml").write_text(TIERS)
    kafka = free_port_block(20 * len(REGIONS) + 2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINFER_")}
    env |= {
        "KINFER_STATE_DIR": str(state / "state"),
        "KINFER_KAFKA_JARS_DIR": str(JARS),
        "KINFER_MODELS_DIR": str(MODELS),
        "KINFER_KAFKA_PORT": str(kafka),
        "KINFER_KAFKA_CONTROLLER_PORT": str(kafka + 1),
        "KINFER_REDIS_PORT": str(free_port_block(len(REGIONS))),
        "KINFER_GATEWAY__PORT": str(free_port()),
        "KINFER_WORKER__MODEL": SUITE_MODEL,
        "KINFER_ADMISSION__TIERS_FILE": str(state / "tiers.toml"),
        "KINFER_ADMISSION__PEER_DOWN_AFTER_S": "6",
        # A worker whose cluster restarts under it hangs in its next transaction (librdkafka
        # blocks in send_offsets_to_transaction when the group coordinator went away); the
        # guard restarts it. 30 s instead of the default 120 s keeps the death test short.
        "KINFER_WORKER__TRANSACTION_HANG_S": "30",
    }
    try:
        up = kinfer("up", "--regions", ",".join(REGIONS), env=env, timeout=400)
        assert up.returncode == 0, up.stdout + up.stderr
        yield Linked(env)
    finally:
        down = kinfer("down", env=env, timeout=240)
        assert down.returncode == 0, down.stdout + down.stderr


def users_by_region(count: int) -> dict[str, list[str]]:
    """``count`` users whose ring region is each region."""
    ring = HashRing(dict(DEFAULT_WEIGHTS))
    out: dict[str, list[str]] = {r: [] for r in REGIONS}
    i = 0
    while any(len(users) < count for users in out.values()):
        user = f"user-{i}"
        if len(out[ring.node(user)]) < count:
            out[ring.node(user)].append(user)
        i += 1
    return out


async def ask(client: AsyncClient, user: str, rid: str) -> InferenceResult:
    return await client.generate(
        f"{rid} hello", user=user, request_id=rid, sampling=SamplingParams(max_tokens=4)
    )


def answers_on(linked: Linked, region: str, topic: str) -> collections.Counter[str]:
    """Request id -> answers committed for ``region``'s clients on ``topic`` and its return copies."""
    settings = linked.settings(region)
    names = TopicNames("kinfer")
    counts: collections.Counter[str] = collections.Counter()
    for copy in names.returns(region, topic, settings.peers):
        counts.update(
            decode_reply_record(v or b"").request_id for v, _ in read_all(settings.bootstrap, copy, 60)
        )
    return counts


def test_status_shows_each_cluster_and_every_flow(linked: Linked) -> None:
    status = kinfer("status", env=linked.env).stdout
    for region in REGIONS:
        assert f"== region {region}" in status
    assert status.count("flow ") == 6 and "no heartbeats" not in status, status
    assert "== mirror-maker running" in status


def test_a_request_runs_in_the_region_its_user_hashes_to_and_its_answer_comes_back_once(
    linked: Linked,
) -> None:
    users = users_by_region(2)

    async def scenario() -> dict[str, InferenceResult]:
        async with linked.client("us-west") as client:
            asks = {f"x-{u}": ask(client, u, f"x-{u}") for region in REGIONS for u in users[region]}
            results = await asyncio.gather(*asks.values())
            assert client.router.stats.duplicate_answers == 0
            return dict(zip(asks, results, strict=True))

    results = asyncio.run(scenario())
    workers = linked.workers()
    for region in REGIONS:
        assert {workers[results[f"x-{u}"].worker_id] for u in users[region]} == {region}
    counts = answers_on(linked, "us-west", "kinfer.replies")
    assert all(counts[rid] == 1 for rid in results), counts


def test_a_resident_tenant_is_served_in_its_region_and_refused_elsewhere_keeping_nothing(
    linked: Linked,
) -> None:
    async def in_eu() -> InferenceResult:
        async with linked.client("eu-central", tenant="alice") as client:
            return await ask(client, "user-1", "alice-eu")

    served = asyncio.run(in_eu())
    assert linked.workers()[served.worker_id] == "eu-central"
    clean = kinfer("regions", "audit", env=linked.env)
    assert clean.returncode == 0 and "0 record(s) of 1 resident tenant(s)" in clean.stdout, clean.stdout

    async def in_us() -> None:
        async with linked.client("us-west", tenant="alice") as client:
            await ask(client, "user-1", "alice-us")

    with pytest.raises(InvalidRequest, match=r"resident in 'eu' \(region eu-central\).*us-west"):
        asyncio.run(in_us())
    audit = kinfer("regions", "audit", env=linked.env)
    # What the misdirected client wrote is the one record of hers outside the EU: no mark,
    # bucket, dead letter, forward or answer of hers was kept in us-west.
    outside = [line for line in audit.stdout.splitlines() if line.startswith("outside")]
    assert audit.returncode == 1 and len(outside) == 1, audit.stdout
    assert "alice" in outside[0] and "us-west" in outside[0] and "kinfer.requests[" in outside[0]

    async def cancel_in_us() -> CancelAck:
        async with linked.client("us-west", tenant="alice") as client:
            return await client.cancel("alice-eu")

    ack = asyncio.run(cancel_in_us())  # nor does a cancel leave a mark of hers there
    assert ack.status == "refused" and "eu-central" in (ack.message or ""), ack


@pytest.mark.slow
def test_a_spoke_whose_cluster_dies_is_routed_around_and_what_it_held_is_answered_once(
    linked: Linked,
) -> None:
    eu = linked.settings("eu-central")
    eu_users = users_by_region(12)["eu-central"]
    worker_pid = next(s for s in pipeline.stages(eu) if s.name == "worker").process.pid()
    assert worker_pid is not None

    async def scenario() -> dict[str, InferenceResult]:
        async with linked.client("us-west") as client:
            # Requests in EU's cluster when it dies: its worker (supervisor and process) paused,
            # they wait in its copy of us-west's dispatch topic for it.
            os.killpg(worker_pid, signal.SIGSTOP)
            held = {f"held-{u}": asyncio.create_task(ask(client, u, f"held-{u}")) for u in eu_users[:6]}
            copy = mirrored("us-west", TopicNames("kinfer").dispatch("eu-central"))
            await until(
                lambda: len(mentions(eu, copy, "held-")) == 6, 60, "the held requests in EU's cluster"
            )
            for node in local.kafka_cluster(eu).nodes:  # the whole cluster at once, as a data centre goes
                pid = node.process.pid()
                assert pid is not None
                os.kill(pid, signal.SIGKILL)
            # Until us-west's admission knows, an EU user's request waits for EU (in us-west's
            # copy for it); the first one answered elsewhere says it knows.
            probes: dict[str, asyncio.Task[InferenceResult]] = {}

            async def routed_around() -> bool:
                rid = f"probe-{len(probes)}"
                probes[rid] = task = asyncio.create_task(ask(client, eu_users[6], rid))
                done, _ = await asyncio.wait({task}, timeout=2)
                return task in done and linked.workers().get(task.result().worker_id) != "eu-central"

            deadline = time.monotonic() + 90
            while not await routed_around():
                assert time.monotonic() < deadline, "us-west never routed eu-central's users around"
            around = {}
            for u in eu_users[7:]:
                around[f"around-{u}"] = await asyncio.wait_for(ask(client, u, f"around-{u}"), 60)
            # The data centre comes back as an operator brings it back (its JVMs then belong to
            # that command, not to this test process, which would leave them unreaped at down).
            back_up = await asyncio.to_thread(kinfer, "up", "--services-only", env=linked.env, timeout=240)
            assert back_up.returncode == 0, back_up.stdout + back_up.stderr
            os.killpg(worker_pid, signal.SIGCONT)
            waited = {**held, **probes}
            back = dict(zip(waited, await asyncio.gather(*waited.values()), strict=True))
            assert client.router.stats.duplicate_answers == 0
            return {**around, **back}

    try:
        results = asyncio.run(scenario())
    finally:
        os.killpg(worker_pid, signal.SIGCONT)
    workers = linked.workers()
    served = {rid: workers.get(r.worker_id, "?") for rid, r in results.items()}
    around = [where for rid, where in served.items() if rid.startswith("around")]
    assert len(around) == 5 and "eu-central" not in around, around
    assert {where for rid, where in served.items() if rid.startswith("held")} == {"eu-central"}, served
    counts = answers_on(linked, "us-west", "kinfer.replies")
    assert all(counts[rid] == 1 for rid in results), {rid: counts[rid] for rid in results}


def mentions(settings: KinferSettings, topic: str, rid_prefix: str) -> list[str]:
    """Request ids starting with ``rid_prefix`` among ``topic``'s committed records."""
    found = []
    for value, _ in read_all(settings.bootstrap, topic, 20):
        try:
            rid = decode_request(value or b"").request_id
        except InvalidMessage:
            continue
        if rid.startswith(rid_prefix):
            found.append(rid)
    return found
