"""Standby workers promoted by `kinfer pool` on demand, released when idle."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from kinfer.consumers.pool.registry import PoolRegistry
from kinfer.infra.stack.process import free_port
from kinfer.producers import AsyncClient, DeadlineExceeded, InternalError
from kinfer.schemas import SamplingParams
from kinfer.schemas.serving import WorkerHeartbeat
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


def test_the_tuner_shortens_the_batch_wait_of_an_underused_worker_with_requests_waiting(
    make_pipeline: Callable[[str], Pipeline], prefix: str
) -> None:
    """The design's rule, forced: a worker that holds each lone request back 400 ms computes
    a small share of the time while requests wait; the tuner halves its wait at run time."""
    pipeline = make_pipeline(prefix)
    registry = PoolRegistry(pipeline.services.redis_url, prefix, "us-west")
    pipeline.start("admission", "admission")
    fast_telemetry = {"KINFER_WORKER__TELEMETRY_INTERVAL_S": "0.5"}
    pipeline.start("worker", "worker", "--max-wait-ms", "400", "--worker-id", "slow-1", env=fast_telemetry)
    pipeline.wait_serving()
    metrics_port = free_port()
    tuner = {"KINFER_POOL__TUNE_SUSTAIN_MS": "1000", "KINFER_POOL__TUNE_COOLDOWN_MS": "1000"}
    pipeline.start("pool", "pool", "--interval-ms", "250", "--metrics-port", str(metrics_port), env=tuner)

    def wait_of_worker() -> int:
        return registry.heartbeats()["slow-1"].load.max_wait_ms

    async def trickle(seconds: float) -> None:
        async with AsyncClient(pipeline.services.settings(prefix).client_config(timeout_s=60)) as client:
            ends = time.monotonic() + seconds
            sent = 0
            while time.monotonic() < ends and wait_of_worker() >= 100:
                # Two at a time, each prompt new (a repeated one would be answered from the cache),
                # each a few tokens: the compute share stays far under 60 % on a loaded machine too.
                short = SamplingParams(max_tokens=4)
                await asyncio.gather(*(client.generate(f"one {sent + i}", sampling=short) for i in range(2)))
                sent += 2

    assert wait_of_worker() == 400
    asyncio.run(trickle(60))
    wait_for(lambda: wait_of_worker() < 100, 10, "the tuner to shorten the worker's batch wait")
    assert metric(metrics_port, "kinfer_pool_actions_total", kind="shorten_wait") >= 2
    pool_log = pipeline.stages[-1].tail(400)
    assert "pool.shorten_wait" in pool_log and "waiting for" in pool_log  # the reason is logged
    assert "worker.tuned" in pipeline.stages[1].tail(400)  # taken at run time, no restart
    assert registry.heartbeats()["slow-1"].load.configured_max_wait_ms == 400  # what a restore goes back to


def test_a_p99_latency_over_a_second_promotes_a_standby(
    make_pipeline: Callable[[str], Pipeline], prefix: str
) -> None:
    """The design's second rule, forced: a worker that holds each lone request back 1.5 s
    answers with a p99 over 1 s, and the pool promotes the warm standby."""
    pipeline = make_pipeline(prefix)
    registry = PoolRegistry(pipeline.services.redis_url, prefix, "us-west")
    fast_telemetry = {"KINFER_WORKER__TELEMETRY_INTERVAL_S": "0.5"}
    pipeline.start("admission", "admission")
    pipeline.start("standby", "worker", "--standby", "--worker-id", "warm-1", env=fast_telemetry)
    pipeline.start("slow", "worker", "--max-wait-ms", "1500", "--worker-id", "slow-1", env=fast_telemetry)
    pipeline.wait_serving()
    metrics_port = free_port()
    no_wait_tuning = {"KINFER_POOL__TUNE_SUSTAIN_MS": "600000"}  # this test is about the p99 rule
    pipeline.start(
        "pool", "pool", "--interval-ms", "250", "--metrics-port", str(metrics_port), env=no_wait_tuning
    )

    def state_of(worker_id: str) -> str:
        return registry.heartbeats()[worker_id].state

    async def trickle() -> None:
        async with AsyncClient(pipeline.services.settings(prefix).client_config(timeout_s=60)) as client:
            sent, ends = 0, time.monotonic() + 60
            while time.monotonic() < ends and state_of("warm-1") == "standby":
                await client.generate(f"slow {sent}")
                sent += 1

    assert state_of("warm-1") == "standby"
    asyncio.run(trickle())
    wait_for(lambda: state_of("warm-1") == "active", 10, "the pool to promote the standby")
    assert "p99 latency" in pipeline.stages[-1].tail(400)  # the reason it was promoted
    assert metric(metrics_port, "kinfer_pool_actions_total", kind="promote") >= 1


def test_a_worker_past_two_percent_errors_is_drained_and_stays_out_when_its_self_test_fails(
    make_pipeline: Callable[[str], Pipeline], prefix: str
) -> None:
    """The design's third rule, forced: every answer of a worker serving the ``fail`` model is
    an error; the pool drains it, it leaves its group, runs a self-test, fails it, and stays
    out saying why."""
    pipeline = make_pipeline(prefix)
    registry = PoolRegistry(pipeline.services.redis_url, prefix, "us-west")
    pipeline.start("admission", "admission")
    broken = {"KINFER_WORKER__MODEL": "fail", "KINFER_WORKER__TELEMETRY_INTERVAL_S": "0.5"}
    pipeline.start("broken", "worker", "--worker-id", "bad-1", env=broken)
    metrics_port = free_port()
    health = {"KINFER_POOL__HEALTH_MIN_ANSWERS": "3", "KINFER_POOL__TUNE_COOLDOWN_MS": "1000"}
    pipeline.start("pool", "pool", "--interval-ms", "250", "--metrics-port", str(metrics_port), env=health)

    def beat() -> WorkerHeartbeat | None:
        return registry.heartbeats().get("bad-1")

    wait_for(lambda: (b := beat()) is not None and b.state == "active", 120, "the worker to join")

    async def failing_calls() -> int:
        failed = 0
        async with AsyncClient(pipeline.services.settings(prefix).client_config(timeout_s=30)) as client:
            ends = time.monotonic() + 60
            while time.monotonic() < ends and (b := beat()) is not None and b.state == "active":
                try:
                    await client.generate(f"will fail {failed}", timeout_s=5)
                except InternalError:
                    failed += 1
                except DeadlineExceeded:
                    break  # sent as it was drained: no worker is left to answer it
        return failed

    assert asyncio.run(failing_calls()) >= 3
    wait_for(lambda: (b := beat()) is not None and b.state == "drained", 15, "the worker to be drained")
    drained = beat()
    assert drained is not None and drained.drained_reason.startswith("self-test failed")
    assert "server errors 100%" in pipeline.stages[-1].tail(400)  # the pool says why it drained
    worker_log = pipeline.stages[1].tail(400)
    assert "worker.drained" in worker_log and "worker.health_check_failed" in worker_log
    assert metric(metrics_port, "kinfer_pool_actions_total", kind="drain") == 1
