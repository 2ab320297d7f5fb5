"""Admission killed with SIGKILL mid-run: Faust redelivers what it had not committed to
the restarted admission, and each request is still answered exactly once, whether its
answer came from a worker, from the response cache, or from a refusal."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from kinfer.producers import AsyncClient
from kinfer.schemas import SamplingParams
from tests.integration.conftest import Pipeline, assert_answered_once


@pytest.mark.slow
def test_sigkill_of_admission_loses_nothing_and_answers_nothing_twice(
    make_pipeline: Callable[[str], Pipeline], prefix: str
) -> None:
    n = 1000
    pipeline = make_pipeline(prefix)
    first = pipeline.start("admission", "admission")
    pipeline.start("worker", "worker", "--max-wait-ms", "10")
    pipeline.wait_serving()
    config = pipeline.services.settings(prefix).client_config(timeout_s=240)
    greedy = SamplingParams(max_tokens=4)
    sampled = SamplingParams(max_tokens=4, temperature=0.8)

    async def scenario() -> int:
        async with AsyncClient(config) as client:
            tasks = [
                asyncio.create_task(
                    client.generate(
                        f"cacheable {i % 50}" if i % 2 == 0 else f"sampled {i}",  # repeats: cache hits
                        sampling=greedy if i % 2 == 0 else sampled,
                        request_id=f"a{i}",
                    )
                )
                for i in range(n)
            ]
            while sum(t.done() for t in tasks) < n // 4:
                await asyncio.sleep(0.02)
            first.kill()
            done_at_kill = sum(t.done() for t in tasks)
            pipeline.start("admission-again", "admission")
            results = await asyncio.gather(*tasks)
            assert [r.request_id for r in results] == [f"a{i}" for i in range(n)]
            assert client.router.stats.duplicate_answers == 0
            return done_at_kill

    started = time.monotonic()
    done_at_kill = asyncio.run(scenario())
    assert done_at_kill < n, "the kill came too late to test anything"
    assert_answered_once(pipeline.services.bootstrap, pipeline.names.replies, "a", n)
    print(f"answered {n} once each; {done_at_kill} before the kill; {time.monotonic() - started:.1f}s")
