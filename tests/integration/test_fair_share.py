"""Fair share through the real pipeline: a light tenant's request is served at its turn, not
after a heavy tenant's backlog (and is after it with ``--queue fifo``); a worker holds at most
``max_waiting`` requests, the rest waits in Kafka."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from confluent_kafka.admin import AdminClient

from kinfer.infra.stack.process import free_port
from kinfer.producers import AsyncClient
from kinfer.schemas import SamplingParams
from tests.integration.conftest import DEFAULT_TEST_TIERS, Pipeline, metric

TENANTS = DEFAULT_TEST_TIERS + '[tenants.heavy]\ntier = "enterprise"\n[tenants.light]\ntier = "enterprise"\n'
TOKENS = SamplingParams(max_tokens=60, logit_bias={257: -100})  # kinfer-tiny: never ends early
HEAVY = 20
TOKENS_150 = SamplingParams(max_tokens=150, logit_bias={257: -100})
"""Long enough that records arrive faster than one row decodes them: the worker holds a queue."""
HELD = HEAVY - 4
"""Heavy requests the worker holds waiting when the light one is sent."""


def backlog_then_one(pipeline: Pipeline, prefix: str, metrics_port: int) -> int:
    """The heavy tenant's backlog, then one light request once the worker holds most of the
    backlog: how many heavy ones were still unanswered when the light one was answered."""
    config = pipeline.services.settings(prefix).client_config(timeout_s=600)

    async def backlog_held() -> None:
        """The condition the light request is sent on (a fixed sleep was not enough on a busy
        machine: the light request reached the worker after 15 heavy ones were done)."""
        deadline = asyncio.get_running_loop().time() + 60
        while await asyncio.to_thread(metric, metrics_port, "kinfer_worker_waiting_requests") < HELD:
            assert asyncio.get_running_loop().time() < deadline, "the worker never held the backlog"
            await asyncio.sleep(0.05)

    async def scenario() -> int:
        async with AsyncClient(config) as client:
            heavy = [
                asyncio.create_task(client.generate(f"heavy {i}", sampling=TOKENS_150, tenant="heavy"))
                for i in range(HEAVY)
            ]
            await backlog_held()
            await client.generate("light", sampling=TOKENS, tenant="light")
            pending = sum(not task.done() for task in heavy)
            await asyncio.gather(*heavy)
            return pending

    return asyncio.run(scenario())


@pytest.mark.parametrize("queue", ["fair", "fifo"])
def test_a_light_tenant_is_served_at_its_turn_not_after_a_heavy_backlog(
    make_pipeline: Callable[[str], Pipeline], prefix: str, queue: str
) -> None:
    pipeline = make_pipeline(prefix)
    pipeline.tiers = TENANTS
    pipeline.start("admission", "admission")
    # One row at a time, and room to hold the whole backlog (max_waiting / 3 partitions > 20).
    port = free_port()
    worker = {
        "KINFER_WORKER__MAX_BATCH_REQUESTS": "1",
        "KINFER_WORKER__MAX_WAITING": "200",
        "KINFER_METRICS_PORT": str(port),
    }
    pipeline.start("worker", "worker", "--queue", queue, env=worker)
    pipeline.wait_serving()
    pending = backlog_then_one(pipeline, prefix, port)
    if queue == "fair":
        assert pending >= HEAVY // 2, f"the light request waited for {HEAVY - pending} heavy ones"
    else:
        assert pending <= 5, f"FIFO served the light request with {pending} heavy ones still waiting"


def test_a_worker_holds_at_most_max_waiting_and_loses_nothing(
    make_pipeline: Callable[[str], Pipeline], prefix: str
) -> None:
    pipeline = make_pipeline(prefix)
    port = free_port()
    pipeline.start("admission", "admission")
    env = {
        "KINFER_WORKER__MAX_BATCH_REQUESTS": "1",
        "KINFER_WORKER__MAX_WAITING": "6",  # 2 per partition: paused at 2, resumed at 1
        "KINFER_METRICS_PORT": str(port),
    }
    pipeline.start("worker", "worker", env=env)
    pipeline.wait_serving()
    config = pipeline.services.settings(prefix).client_config(timeout_s=600)
    peak = 0.0

    async def scenario() -> int:
        nonlocal peak
        async with AsyncClient(config) as client:
            calls = [asyncio.create_task(client.generate(f"q{i}", sampling=TOKENS_150)) for i in range(12)]
            while not all(c.done() for c in calls):
                peak = max(peak, await asyncio.to_thread(metric, port, "kinfer_worker_waiting_requests"))
                await asyncio.sleep(0.05)
            return len({(await c).request_id for c in calls})

    assert asyncio.run(scenario()) == 12
    # At most max_waiting, plus what one poll takes in before the pause (one record here).
    assert 1 <= peak <= 7, peak


@pytest.mark.slow
def test_a_full_partition_lost_and_assigned_back_is_fetched_again(
    make_pipeline: Callable[[str], Pipeline], prefix: str
) -> None:
    """The worker's queue is full (its partition paused) when it hangs past its session timeout:
    the group drops it, and once resumed it is assigned the same partition again. librdkafka
    keeps a partition paused across that, and the worker had forgotten it paused it: unless each
    assigned partition starts resumed, the rest of the backlog is never fetched (a broker's
    death did this to a 600-request run: 439 never answered)."""
    pipeline = make_pipeline(prefix)
    port = free_port()
    pipeline.start("admission", "admission")
    env = {
        "KINFER_WORKER__MAX_BATCH_REQUESTS": "1",
        "KINFER_WORKER__MAX_WAITING": "30",  # 10 per partition: paused once 10 wait
        "KINFER_WORKER__SESSION_TIMEOUT_MS": "6000",  # the broker's least
        "KINFER_METRICS_PORT": str(port),
    }
    worker = pipeline.start("worker", "worker", env=env)
    pipeline.wait_serving()
    settings = pipeline.services.settings(prefix)
    group = settings.worker_config().consumer_group
    admin = AdminClient({"bootstrap.servers": pipeline.services.bootstrap})

    def members() -> int:
        return len(admin.describe_consumer_groups([group], request_timeout=5)[group].result().members)

    async def scenario() -> int:
        async with AsyncClient(settings.client_config(timeout_s=120)) as client:
            calls = [asyncio.create_task(client.generate(f"p{i}", sampling=TOKENS_150)) for i in range(HEAVY)]
            while await asyncio.to_thread(metric, port, "kinfer_worker_waiting_requests") < 10:
                await asyncio.sleep(0.05)
            worker.pause()  # full: its partition paused
            try:
                while await asyncio.to_thread(members) > 0:  # its session timed out
                    await asyncio.sleep(0.2)
            finally:
                worker.resume()
            return len({(await c).request_id for c in calls})

    assert asyncio.run(scenario()) == HEAVY
    assert "worker.partitions_lost" in worker.tail(200), worker.tail(30)
