"""Open-loop load: requests arrive as a Poisson process, each timed on its own."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable

from kinfer.infra.settings import KinferSettings
from kinfer.producers import AsyncClient
from kinfer.schemas import InferenceResult, SamplingParams

CACHE_WORKER = "cache"
"""``worker_id`` of an answer admission took from the response cache."""

STAGES = ("to_admission_ms", "admission_ms", "to_worker_ms", "queue_ms", "compute_ms", "reply_ms")
"""Where a request's time goes, in order; they add up to its end-to-end latency."""


def stage_split(result: InferenceResult, sent_ms: float, received_ms: float) -> dict[str, float]:
    """One answer's latency by stage, from the stamps it carries (Unix ms, one host's clock):
    client to admission, admission's decision and forward, dispatch to the worker's poll,
    queue wait for a batch slot, compute, and reply (commit, then the client's read)."""
    t = result.timings
    if t is None or not (t.admitted_ms and t.dispatched_ms and t.started_ms):
        raise ValueError(f"answer {result.request_id} carries no timings (a cache hit?)")
    return {
        "to_admission_ms": t.admitted_ms - sent_ms,
        "admission_ms": t.dispatched_ms - t.admitted_ms,
        "to_worker_ms": t.consumed_ms - t.dispatched_ms,
        "queue_ms": t.started_ms - t.consumed_ms,
        "compute_ms": t.finished_ms - t.started_ms,
        "reply_ms": received_ms - t.finished_ms,
    }


async def open_loop(
    settings: KinferSettings,
    rate: float,
    n: int,
    sampling: SamplingParams,
    prompt: Callable[[int], str] | None = None,
    warm_up: int = 1,
) -> tuple[list[dict[str, float]], float]:
    """``n`` requests with exponential gaps (mean 1/rate), never waiting for answers to send
    the next; returns each answer's timings and the wall time from first send to last answer.
    Timings: end to end, added (end to end - compute), and each of :data:`STAGES`; answers
    from the response cache (``cached`` 1) have end to end only. First, ``warm_up`` requests
    of their own (new prompts) at the same rate, not counted: a fresh broker's JIT and the
    model's first batches are not the steady state.

    The default prompts are new to this call, so no answer comes from the response cache
    (greedy answers to a prompt seen before would, and would never reach a worker)."""
    rng = random.Random(7)
    run = uuid.uuid4().hex[:8]
    prompt = prompt or (lambda i: f"request {run}-{i}")
    samples: list[dict[str, float]] = []
    async with AsyncClient(settings.client_config(timeout_s=300)) as client:

        async def one(text: str) -> None:
            sent_ms = time.time() * 1000
            result = await client.generate(text, sampling=sampling)
            received_ms = time.time() * 1000
            e2e = received_ms - sent_ms
            sample = {"e2e_ms": e2e, "tokens": result.usage.completion_tokens, "cached": 0.0}
            if result.worker_id == CACHE_WORKER:  # answered by admission: no worker stages
                sample["cached"] = 1.0
            else:
                stages = stage_split(result, sent_ms, received_ms)
                sample.update(stages, added_ms=e2e - stages["compute_ms"])
            samples.append(sample)

        async def arrivals(indices: range, make: Callable[[int], str]) -> None:
            tasks = []
            for i in indices:
                tasks.append(asyncio.create_task(one(make(i))))
                await asyncio.sleep(rng.expovariate(rate))
            await asyncio.gather(*tasks)

        await arrivals(range(warm_up), lambda i: f"warm up {run}-{i}")
        samples.clear()
        began = time.perf_counter()
        await arrivals(range(n), prompt)
        wall = time.perf_counter() - began
    return samples, wall
