"""The pipeline's ceiling: the whole pipeline against the raw engine at the same batch policy,
both at saturation, side by side in one run, for SmolLM2-135M (the real workload) and
kinfer-tiny (where the pipeline's own cost dominates).

    python -m benchmarks.ceiling [--threads 1]

Open-loop Poisson arrivals above what either can answer (so both run saturated) of greedy
16-token requests with new prompts. The engine runs in this process through the worker's own
batch scheduler (``benchmarks.engine_loop``); the pipeline is a private stack (Kafka, Redis,
admission, one worker). The model gets the same fixed thread budget in both (``--threads``,
standing in for an accelerator of fixed size); the pipeline's other processes share what is
left. Throughput = answered / (last answer - first arrival). Writes results/ceiling.json, .png.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

import torch
from redis import Redis

from benchmarks import report
from benchmarks.cpu import cpu_seconds, per_request_ms
from benchmarks.engine_loop import Done, continuous, poisson
from benchmarks.load import open_loop
from benchmarks.plots import figure
from benchmarks.stack import MODELS, pipeline, private_stack
from kinfer.consumers.engine import load_runner
from kinfer.infra.demo import percentile
from kinfer.infra.models import DEFAULT_MODEL, ModelStore
from kinfer.infra.models.pull import ensure_local
from kinfer.schemas import SamplingParams

WORKLOADS = {DEFAULT_MODEL: (12.0, 72, 12), "kinfer-tiny": (1000.0, 800, 400)}
"""Per model: offered req/s (above both capacities), requests measured, and requests sent
first to warm up (a fresh broker JIT-compiles for a while; both sides get the same)."""


def summary(latencies: list[float], tokens: int, wall_s: float) -> dict[str, Any]:
    """Throughput and latency percentiles, with every latency (ms) as the raw samples."""
    return {
        "e2e_ms": latencies,
        "requests_per_s": len(latencies) / wall_s,
        "tokens_per_s": tokens / wall_s,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "wall_s": wall_s,
    }


def engine(model: str, rate: float, n: int, warm_up: int, sampling: SamplingParams) -> dict[str, Any]:
    path = ensure_local(model, ModelStore(MODELS))
    runner = load_runner(path, device="cpu", served_name=model)
    run = uuid.uuid4().hex[:8]
    continuous(runner, poisson(rate, warm_up, lambda i: (f"warm up {run}-{i}", sampling, "")))
    cpu = time.process_time()
    done: list[Done] = continuous(runner, poisson(rate, n, lambda i: (f"request {run}-{i}", sampling, "")))
    cpu_ms = (time.process_time() - cpu) * 1000 / len(done)
    wall = max(d.finished_s for d in done)
    return {
        **summary([d.latency_ms for d in done], sum(d.tokens for d in done), wall),
        "cpu_ms_per_request": cpu_ms,
    }


def whole_pipeline(
    model: str, rate: float, n: int, warm_up: int, sampling: SamplingParams, threads: int
) -> dict[str, Any]:
    """Also where its CPU goes: ms per request of each process, and Redis commands per request."""
    with private_stack(model) as stack, pipeline(stack, threads=threads):
        asyncio.run(open_loop(stack.settings, rate, warm_up, sampling))
        redis = Redis.from_url(stack.settings.redis)
        commands, cpu = _redis_commands(redis), cpu_seconds()
        samples, wall = asyncio.run(open_loop(stack.settings, rate, n, sampling, warm_up=0))
        cpu_ms = per_request_ms(cpu, cpu_seconds(), len(samples))
        redis_per_request = (_redis_commands(redis) - commands) / len(samples)
    out: dict[str, Any] = summary(
        [s["e2e_ms"] for s in samples], int(sum(s["tokens"] for s in samples)), wall
    )
    return {**out, "cpu_ms_per_request": cpu_ms, "redis_commands_per_request": redis_per_request}


def _redis_commands(redis: Redis) -> int:
    return int(redis.info("stats")["total_commands_processed"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sampling = SamplingParams(max_tokens=args.max_tokens, stop=())
    results: dict[str, Any] = {}
    steps = 2 * len(WORKLOADS)
    for i, (model, (rate, n, warm_up)) in enumerate(WORKLOADS.items()):
        if model != "kinfer-tiny":
            ensure_local(model, ModelStore(MODELS))
        report.progress(2 * i, steps, f"{model}: engine alone")
        alone = engine(model, rate, n, warm_up, sampling)
        report.progress(2 * i + 1, steps, f"{model}: whole pipeline")
        whole = whole_pipeline(model, rate, n, warm_up, sampling, args.threads)
        ratio = whole["requests_per_s"] / alone["requests_per_s"]
        results[model] = {
            "offered_per_s": rate,
            "requests": n,
            "engine": alone,
            "pipeline": whole,
            "ratio": ratio,
        }
    report.progress(steps, steps, "done")
    headline = []
    for model, r in results.items():
        whole, alone = r["pipeline"]["requests_per_s"], r["engine"]["requests_per_s"]
        figures = f"{r['ratio']:.2f} ({whole:.1f} vs {alone:.1f} req/s)"
        headline.append((f"{model}: pipeline / engine", figures))
        cpu = ", ".join(f"{role} {ms:.1f}" for role, ms in r["pipeline"]["cpu_ms_per_request"].items())
        headline.append((f"{model}: pipeline CPU ms per request", cpu))
        own = r["pipeline"]["cpu_ms_per_request"].get("worker", 0.0) / r["engine"]["cpu_ms_per_request"]
        headline.append((f"{model}: worker CPU per request / engine alone's", f"{own:.2f}"))
    report.write(
        "ceiling",
        settings={**vars(args), "workloads": WORKLOADS, "load": "open-loop Poisson, above capacity"},
        results=results,
        headline=headline,
    )
    plot(results)


def plot(results: dict[str, Any]) -> None:
    fig, axes = figure(9, 3.6, ncols=len(results))
    for ax, (model, r) in zip(axes, results.items(), strict=True):
        values = [r["engine"]["requests_per_s"], r["pipeline"]["requests_per_s"]]
        bars = ax.bar(["engine alone", "whole pipeline"], values, color=["#4477aa", "#228833"])
        ax.bar_label(bars, fmt="%.1f")
        ax.set_title(f"{model}: {r['ratio']:.2f} of the engine", fontsize=9)
        ax.set_ylabel("requests / s at saturation")
    fig.suptitle("Ceiling: whole pipeline vs the engine alone, same batch policy, torch on 1 thread")
    fig.tight_layout()
    fig.savefig(report.png("ceiling"), dpi=120)


if __name__ == "__main__":
    main()
