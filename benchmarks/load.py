"""Open-loop load: requests arrive as a Poisson process, each timed on its own."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable

from kinfer.infra.settings import KinferSettings
from kinfer.producers import AsyncClient
from kinfer.schemas import SamplingParams


async def open_loop(
    settings: KinferSettings,
    rate: float,
    n: int,
    sampling: SamplingParams,
    prompt: Callable[[int], str] | None = None,
) -> tuple[list[dict[str, float]], float]:
    """``n`` requests with exponential gaps (mean 1/rate), never waiting for answers to send
    the next; returns each answer's timings and the wall time from first send to last answer.
    Timings: end to end, to worker start (``queue_ms``), compute, reply (the rest).

    The default prompts are new to this call, so no answer comes from the response cache
    (greedy answers to a prompt seen before would, and would never reach a worker)."""
    rng = random.Random(7)
    run = uuid.uuid4().hex[:8]
    prompt = prompt or (lambda i: f"request {run}-{i}")
    samples: list[dict[str, float]] = []
    async with AsyncClient(settings.client_config(timeout_s=300)) as client:

        async def one(i: int) -> None:
            started = time.perf_counter()
            result = await client.generate(prompt(i), sampling=sampling)
            e2e = (time.perf_counter() - started) * 1000
            samples.append(
                {
                    "e2e_ms": e2e,
                    "to_worker_ms": result.queue_ms,
                    "compute_ms": result.compute_ms,
                    "reply_ms": e2e - result.queue_ms - result.compute_ms,
                    "added_ms": e2e - result.compute_ms,
                    "tokens": result.usage.completion_tokens,
                }
            )

        await one(-1)  # warm up the path
        samples.clear()
        began = time.perf_counter()
        tasks = []
        for i in range(n):
            tasks.append(asyncio.create_task(one(i)))
            await asyncio.sleep(rng.expovariate(rate))
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - began
    return samples, wall
