"""Cold start vs warm promotion: time from "we need a worker" to the first answer.

    python -m benchmarks.warm_vs_cold [--rounds 3] [--model smollm2-135m-instruct]

cold: a request waits; `kinfer worker` is started (imports, model build, group join).
warm: a request waits; a `kinfer worker --standby` that already loaded and warmed
      its model is promoted (group join only).
Own Kafka + Redis on free ports; writes benchmarks/results/warm_vs_cold.json and .png.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import report
from benchmarks.plots import figure
from benchmarks.stack import MODELS, private_stack
from kinfer.consumers.pool.registry import PoolRegistry
from kinfer.infra.models import DEFAULT_MODEL, ModelStore
from kinfer.infra.models.pull import ensure_local
from kinfer.infra.settings import KinferSettings
from kinfer.infra.stack.stages import StageProcess, running
from kinfer.producers import AsyncClient
from kinfer.schemas import SamplingParams


async def first_answer(settings: KinferSettings, start: Callable[[], object], prompt: str) -> float:
    """Send a request, then call ``start()``; seconds from start to the answer.

    Each measurement uses its own prompt: a repeated greedy prompt would be
    answered from the response cache without any worker.
    """
    async with AsyncClient(settings.client_config(timeout_s=180)) as client:
        pending = asyncio.create_task(client.generate(prompt, sampling=SamplingParams(max_tokens=4)))
        await asyncio.sleep(0.2)  # the request is admitted and waiting
        t0 = time.monotonic()
        start()
        await pending
        return time.monotonic() - t0


def wait_standby(registry: PoolRegistry, worker_id: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while not any(m.worker_id == worker_id and m.state == "standby" for m in registry.members()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{worker_id} never became a warm standby")
        time.sleep(0.1)


def measure_cold(settings: KinferSettings, env: dict[str, str], logs: Path, i: int) -> float:
    started: list[StageProcess] = []
    try:
        return asyncio.run(
            first_answer(
                settings,
                lambda: started.append(StageProcess("cold", ["worker"], env, logs / f"cold{i}.log")),
                f"cold start {i}",
            )
        )
    finally:
        for stage in started:
            stage.stop()


def measure_warm(
    settings: KinferSettings, env: dict[str, str], logs: Path, registry: PoolRegistry, i: int
) -> float:
    worker_id = f"warm{i}"
    standby = StageProcess(
        "warm", ["worker", "--standby", "--worker-id", worker_id], env, logs / f"{worker_id}.log"
    )
    try:
        wait_standby(registry, worker_id)
        return asyncio.run(
            first_answer(settings, lambda: registry.send(worker_id, "promote"), f"warm start {i}")
        )
    finally:
        standby.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="What the workers serve.")
    args = parser.parse_args()
    ensure_local(args.model, ModelStore(MODELS))
    cold: list[float] = []
    warm: list[float] = []
    with private_stack(args.model) as stack:
        registry = PoolRegistry(stack.settings.redis, stack.settings.topic_prefix, stack.settings.region)
        with running([StageProcess("admission", ["admission"], stack.env, stack.logs / "admission.log")]):
            for i in range(args.rounds):
                report.progress(i, args.rounds, f"round {i + 1}: cold start, then a promoted standby")
                cold.append(measure_cold(stack.settings, stack.env, stack.logs, i))
                warm.append(measure_warm(stack.settings, stack.env, stack.logs, registry, i))
                print(f"round {i}: cold {cold[-1]:.2f}s, warm {warm[-1]:.2f}s")
    report.progress(args.rounds, args.rounds, "done")
    results = {
        "cold_s": cold,
        "warm_s": warm,
        "cold_median_s": statistics.median(cold),
        "warm_median_s": statistics.median(warm),
        "cold_over_warm": statistics.median(cold) / statistics.median(warm),
    }
    report.write(
        "warm_vs_cold",
        settings=vars(args),
        results=results,
        headline=[
            ("cold start, median", f"{results['cold_median_s']:.2f} s"),
            ("promoted standby, median", f"{results['warm_median_s']:.2f} s"),
            ("cold / warm", f"{results['cold_over_warm']:.1f}x"),
        ],
    )
    plot(cold, warm, args.model, report.png("warm_vs_cold"))


def plot(cold: list[float], warm: list[float], model: str, path: Path) -> None:
    fig, ax = figure(6, 3.6)
    ax.boxplot([cold, warm], tick_labels=["cold start", "warm promotion"])
    for x, values in ((1, cold), (2, warm)):
        ax.scatter([x] * len(values), values, color="#4477aa", zorder=3)
    ax.set_ylabel("seconds to first answer")
    ax.set_title(f"kinfer worker ({model}): cold start vs warm standby promotion")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
