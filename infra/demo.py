"""`kinfer demo` / `make demo`: the whole pipeline on one machine, with a real workload."""

from __future__ import annotations

import asyncio
import statistics
import time

import typer

from kinfer.infra.engine_choice import engine_for, model_for
from kinfer.infra.models import ModelStore
from kinfer.infra.settings import KinferSettings
from kinfer.infra.stack import local
from kinfer.infra.stack.stages import StageProcess, running
from kinfer.producers import AsyncClient, ChatMessage, DeadlineExceeded
from kinfer.schemas import SamplingParams

QUESTIONS = [
    "What is the capital of France?",
    "What is Apache Kafka used for?",
    "Name three primary colors.",
    "What is 12 times 12?",
    "Give me a synonym for happy.",
    "What is the largest planet in the solar system?",
    "How many days are in a week?",
    "What language is spoken in Brazil?",
]


async def wait_until_serving(settings: KinferSettings, timeout_s: float = 120.0) -> float:
    """Send probes until one is answered: admission and worker are then up. Returns seconds."""
    started = time.monotonic()
    async with AsyncClient(settings.client_config(timeout_s=5)) as client:
        while True:
            try:
                await client.generate("ping", sampling=SamplingParams(max_tokens=1), timeout_s=5)
                return time.monotonic() - started
            except DeadlineExceeded:
                if time.monotonic() - started > timeout_s:
                    raise


async def send_workload(settings: KinferSettings, n: int, max_tokens: int) -> list[tuple[str, str, float]]:
    async with AsyncClient(settings.client_config(timeout_s=60)) as client:

        async def one(i: int) -> tuple[str, str, float]:
            question = QUESTIONS[i % len(QUESTIONS)]
            t0 = time.perf_counter()
            result = await client.generate(
                [ChatMessage("user", question)], sampling=SamplingParams(max_tokens=max_tokens)
            )
            # A question asked again after its first answer committed is a response-cache hit.
            source = " (cache)" if result.worker_id == "cache" else ""
            return question, result.text + source, (time.perf_counter() - t0) * 1000

        return await asyncio.gather(*(one(i) for i in range(n)))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def run_demo(settings: KinferSettings, *, requests: int, max_tokens: int) -> None:
    started_stack = not any(s.state == "running" for s in local.status(settings))
    typer.echo("== starting Kafka (KRaft) and Redis, creating topics")
    local.up(settings)
    model = settings.worker.model
    worker = engine_for(settings.worker_config())
    typer.echo(f"== model {model} on {worker.engine}: {model_for(worker, ModelStore(settings.model_root))}")
    logs = settings.state_dir / "demo"
    env = {"KINFER_STATE_DIR": str(settings.state_dir)}
    try:
        with running(
            [
                StageProcess("admission", ["admission"], env, logs / "admission.log"),
                StageProcess("worker", ["worker"], env, logs / "worker.log"),
            ]
        ) as stages:
            typer.echo(f"== started `kinfer admission` and `kinfer worker` ({model}); waiting")
            try:
                ready = asyncio.run(wait_until_serving(settings))
            except DeadlineExceeded:
                for stage in stages:
                    typer.echo(f"--- {stage.name} log:\n{stage.tail()}")
                raise
            typer.echo(f"   serving after {ready:.1f}s")
            typer.echo(f"== sending {requests} requests concurrently through the client")
            t0 = time.perf_counter()
            answers = asyncio.run(send_workload(settings, requests, max_tokens))
            wall = time.perf_counter() - t0
            for question, text, ms in answers[: len(QUESTIONS)]:
                typer.echo(f"  {ms:7.1f} ms  {question}\n             -> {text!r}")
            if len(answers) > len(QUESTIONS):
                typer.echo(f"  ... and {len(answers) - len(QUESTIONS)} more (the same questions again)")
            latencies = [ms for _, _, ms in answers]
            typer.echo(
                f"== {len(answers)} answers in {wall:.2f}s ({len(answers) / wall:.1f} req/s); latency "
                f"p50 {percentile(latencies, 50):.1f} ms, p99 {percentile(latencies, 99):.1f} ms, "
                f"mean {statistics.fmean(latencies):.1f} ms"
            )
    finally:
        if started_stack:
            typer.echo(f"== stopping what the demo started: {', '.join(local.down(settings)) or 'nothing'}")
