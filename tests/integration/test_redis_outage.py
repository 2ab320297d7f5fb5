"""Redis stopped for 30 s under a steady 20 requests/s: answers keep flowing the whole
time (the documented degraded mode), and every request is answered exactly once."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kinfer.infra.stack.process import free_port
from kinfer.infra.stack.redis import RedisConfig, RedisServer
from kinfer.producers import AsyncClient
from kinfer.schemas import SamplingParams
from tests.integration.conftest import Pipeline, assert_answered_once

RATE = 20.0
OUTAGE_S = 30.0


@pytest.mark.slow
def test_answers_keep_flowing_while_redis_is_down(
    make_pipeline: Callable[[str], Pipeline], prefix: str, tmp_path: Path
) -> None:
    redis_server = RedisServer(RedisConfig(state_dir=tmp_path / "own-redis", port=free_port()))
    redis_server.start()
    own = {"KINFER_REDIS_URL": redis_server.config.url}
    pipeline = make_pipeline(prefix)
    admission = pipeline.start("admission", "admission", env=own)
    worker = pipeline.start("worker", "worker", "--max-wait-ms", "10", env=own)
    try:
        pipeline.wait_serving()
        config = pipeline.services.settings(prefix).client_config(
            timeout_s=120, redis_url=redis_server.config.url
        )
        total = int((OUTAGE_S + 10) * RATE)

        async def scenario() -> list[float]:
            async with AsyncClient(config) as client:
                done: list[float] = []
                t0 = time.monotonic()

                async def one(i: int) -> None:
                    sampling = SamplingParams(max_tokens=4, temperature=0.7)  # never a cache hit
                    await client.generate(f"steady {i}", sampling=sampling, request_id=f"r{i}")
                    done.append(time.monotonic() - t0)

                tasks = []
                for i in range(total):
                    if i == int(5 * RATE):
                        redis_server.stop()
                    if i == int((5 + OUTAGE_S) * RATE):
                        redis_server.start()
                    tasks.append(asyncio.create_task(one(i)))
                    await asyncio.sleep(max(0.0, t0 + (i + 1) / RATE - time.monotonic()))
                await asyncio.gather(*tasks)
                return sorted(done)

        done = asyncio.run(scenario())
        during = [t for t in done if 6 <= t <= 5 + OUTAGE_S]
        gaps = [b - a for a, b in itertools.pairwise(done) if 6 <= a <= 5 + OUTAGE_S]
        print(f"{len(during)} answers during the {OUTAGE_S:.0f}s outage; longest gap {max(gaps):.2f}s")
        assert len(during) >= 0.8 * RATE * (OUTAGE_S - 1), len(during)
        assert max(gaps) < 3.0
        assert_answered_once(pipeline.services.bootstrap, pipeline.names.replies, "r", total)
        assert admission.alive() and worker.alive()
        assert "redis.down_degraded_mode" in admission.tail(2000)
    finally:
        redis_server.stop()
