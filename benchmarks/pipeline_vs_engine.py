"""Pipeline vs raw engine, batched vs unbatched, measured side by side in one run.

    python -m benchmarks.pipeline_vs_engine [--requests 256] [--max-tokens 16] [--threads 1]

Starts its own Kafka + Redis (own ports, own state dir), `kinfer admission` and
one `kinfer worker`, and stops them at the end. The model gets the same fixed thread
budget in the engine-alone runs and in the pipeline's worker (``--threads``, standing in for
an accelerator of fixed size; 0 = torch's default, all cores), so the ratio compares like
with like; the pipeline's other processes share what is left. Writes
benchmarks/results/pipeline_vs_engine.json and .png. Ratios matter, not the
absolute numbers: this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import time
from pathlib import Path

import torch

from benchmarks.plots import requests_per_second_bars
from benchmarks.stack import private_stack
from kinfer.consumers.engine import GenerationInput, load_runner
from kinfer.infra.demo import percentile, wait_until_serving
from kinfer.infra.settings import KinferSettings
from kinfer.infra.stack.stages import StageProcess, running
from kinfer.producers import AsyncClient
from kinfer.schemas import SamplingParams

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent


def prompts(n: int) -> list[str]:
    return [f"benchmark prompt {i} " + "lorem ipsum " * (i % 5) for i in range(n)]


def engine_throughput(items: list[GenerationInput], batch: int, device: str) -> dict[str, float]:
    runner = load_runner("kinfer-tiny", device=device)
    runner.generate(items[:batch])  # warm up
    t0 = time.perf_counter()
    tokens = 0
    for i in range(0, len(items), batch):
        tokens += sum(o.completion_tokens for o in runner.generate(items[i : i + batch]))
    wall = time.perf_counter() - t0
    return {"requests_per_s": len(items) / wall, "tokens_per_s": tokens / wall, "wall_s": wall}


async def pipeline_run(
    settings: KinferSettings, texts: list[str], sampling: SamplingParams
) -> dict[str, float]:
    async with AsyncClient(settings.client_config(timeout_s=300)) as client:

        async def one(prompt: str) -> tuple[float, int]:
            t0 = time.perf_counter()
            result = await client.generate(prompt, sampling=sampling)
            return (time.perf_counter() - t0) * 1000, result.usage.completion_tokens

        t0 = time.perf_counter()
        done = await asyncio.gather(*(one(p) for p in texts))
        wall = time.perf_counter() - t0
    latencies = [ms for ms, _ in done]
    return {
        "requests_per_s": len(texts) / wall,
        "tokens_per_s": sum(t for _, t in done) / wall,
        "wall_s": wall,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
    }


def run_pipeline(
    texts: list[str], sampling: SamplingParams, batch: int, device: str, threads: int
) -> dict[str, float]:
    with private_stack() as stack:
        env = {**stack.env, "KINFER_WORKER__DEVICE": device, "KINFER_WORKER__MAX_BATCH_REQUESTS": str(batch)}
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        with running(
            [
                StageProcess("admission", ["admission"], env, stack.logs / "admission.log"),
                StageProcess("worker", ["worker"], env, stack.logs / "worker.log"),
            ]
        ):
            asyncio.run(wait_until_serving(stack.settings))
            # Warm up with prompts of its own: greedy answers to the measured prompts would
            # come from the response cache and never reach the worker.
            warm_up = [f"warm up {i}" for i in range(batch)]
            asyncio.run(pipeline_run(stack.settings, warm_up, sampling))
            return asyncio.run(pipeline_run(stack.settings, texts, sampling))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=256)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sampling = SamplingParams(max_tokens=args.max_tokens)
    texts = prompts(args.requests)
    items = [GenerationInput(p, sampling) for p in texts]
    results = {
        "engine, batch 1": engine_throughput(items, 1, args.device),
        f"engine, batch {args.batch}": engine_throughput(items, args.batch, args.device),
        "pipeline": run_pipeline(texts, sampling, args.batch, args.device, args.threads),
    }
    engine_batched = results[f"engine, batch {args.batch}"]["requests_per_s"]
    report = {
        "config": vars(args),
        "machine": {
            "platform": platform.platform(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available(),
        },
        "results": results,
        "ratios": {
            "batched_over_unbatched": engine_batched / results["engine, batch 1"]["requests_per_s"],
            "pipeline_over_engine_batched": results["pipeline"]["requests_per_s"] / engine_batched,
        },
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "pipeline_vs_engine.json").write_text(json.dumps(report, indent=2) + "\n")
    requests_per_second_bars(
        list(results),
        [r["requests_per_s"] for r in results.values()],
        "kinfer-tiny: engine unbatched vs batched vs full Kafka pipeline",
        RESULTS / "pipeline_vs_engine.png",
    )
    print(json.dumps(report["results"], indent=2))
    print(json.dumps(report["ratios"], indent=2))
    print(f"wrote {RESULTS / 'pipeline_vs_engine.json'} and .png")


if __name__ == "__main__":
    main()
