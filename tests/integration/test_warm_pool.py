"""Standby workers promoted by `kinfer pool` on demand, released when idle."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from kinfer.consumers.pool.registry import PoolRegistry
from kinfer.infra.stack.process import free_port
from kinfer.producers import AsyncClient
from tests.integration.conftest import Pipeline, metric, wait_for


def test_standby_is_promoted_on_demand_and_released_when_idle(
    make_pipeline: Callable[[str], Pipeline], prefix: str
) -> None:
    pipeline = make_pipeline(prefix)
    registry = PoolRegistry(pipeline.services.redis_url, prefix, "us-west")

    def states() -> dict[str, str]:
        now = int(time.time() * 1000)
        return {m.worker_id: m.state for m in registry.members() if now - m.last_seen_ms < 5000}

    pipeline.start("admission", "admission")
    pipeline.start("standby", "worker", "--standby", "--worker-id", "warm-1")
    wait_for(lambda: states() == {"warm-1": "standby"}, 120, "the standby worker to register warm")

    metrics_port = free_port()
    pipeline.start(
        "pool",
        "pool",
        "--idle-release-ms",
        "3000",
        "--min-active",
        "0",
        "--interval-ms",
        "500",
        "--metrics-port",
        str(metrics_port),
    )
    pipeline.wait_serving()  # the probe is answered only once the pool promoted the standby
    assert states() == {"warm-1": "active"}

    async def one() -> str:
        async with AsyncClient(pipeline.services.settings(prefix).client_config(timeout_s=60)) as client:
            return (await client.generate("after promotion")).text

    assert asyncio.run(one())
    wait_for(lambda: states() == {"warm-1": "standby"}, 30, "the idle worker to be released")
    assert "worker.released" in pipeline.stages[1].tail(200)
    assert metric(metrics_port, "kinfer_pool_actions_total", kind="promote") >= 1
    assert metric(metrics_port, "kinfer_pool_actions_total", kind="release") >= 1
