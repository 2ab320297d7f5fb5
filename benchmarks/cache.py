"""The response cache on a workload whose prompts repeat: hit rate, and latency of hits
against misses, side by side in one run.

    python -m benchmarks.cache [--rate 40] [--requests 400] [--prompts 40]

A private stack (Kafka, Redis, admission, one kinfer-tiny worker with torch on one thread).
Open-loop Poisson arrivals of greedy 16-token requests whose prompts are drawn from a pool of
``--prompts`` with Zipf-like popularity (weight 1/rank), as repeated questions are. A greedy
answer is cached once its worker's transaction commits, so a repeat arriving before that is
a miss too; the best possible hit rate is 1 - distinct prompts / requests. Hits are answers
admission took from the cache (``worker_id`` "cache"). Writes results/cache.json and .png.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import uuid
from typing import Any

from benchmarks import report
from benchmarks.load import open_loop
from benchmarks.plots import figure
from benchmarks.stack import pipeline, private_stack
from kinfer.infra.demo import percentile
from kinfer.schemas import SamplingParams


def zipf_prompts(pool: int, n: int) -> list[str]:
    rng = random.Random(11)
    run = uuid.uuid4().hex[:8]
    weights = [1 / rank for rank in range(1, pool + 1)]
    return [f"frequently asked {run} #{i}" for i in rng.choices(range(pool), weights=weights, k=n)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--prompts", type=int, default=40)
    args = parser.parse_args()
    prompts = zipf_prompts(args.prompts, args.requests)
    report.progress(0, 1, "repeated prompts through the pipeline")
    with private_stack() as stack, pipeline(stack, threads=1):
        samples, _ = asyncio.run(
            open_loop(
                stack.settings, args.rate, args.requests, SamplingParams(max_tokens=16), prompts.__getitem__
            )
        )
    report.progress(1, 1, "done")
    hits = [s["e2e_ms"] for s in samples if s["cached"]]
    misses = [s["e2e_ms"] for s in samples if not s["cached"]]
    best = 1 - len(set(prompts)) / len(prompts)
    results: dict[str, Any] = {
        "hit_rate": len(hits) / len(samples),
        "best_possible_hit_rate": best,
        "distinct_prompts": len(set(prompts)),
        "hit_ms": {"p50": percentile(hits, 50), "p99": percentile(hits, 99)} if hits else None,
        "miss_ms": {"p50": percentile(misses, 50), "p99": percentile(misses, 99)},
    }
    headline = [
        ("hit rate (best possible)", f"{results['hit_rate']:.1%} ({best:.1%})"),
        ("miss p50 / p99", f"{results['miss_ms']['p50']:.1f} / {results['miss_ms']['p99']:.1f} ms"),
    ]
    if hits:
        headline.append(
            ("hit p50 / p99", f"{results['hit_ms']['p50']:.1f} / {results['hit_ms']['p99']:.1f} ms")
        )
    report.write(
        "cache",
        settings={**vars(args), "model": "kinfer-tiny", "max_tokens": 16, "popularity": "1/rank"},
        results=results,
        headline=headline,
        samples=samples,
    )
    plot(hits, misses)


def plot(hits: list[float], misses: list[float]) -> None:
    fig, ax = figure(7, 3.6)
    bins = [2**i for i in range(0, 13)]
    ax.hist([hits, misses], bins=bins, label=["cache hits", "misses (a worker answered)"])
    ax.set_xscale("log")
    ax.set_xlabel("end-to-end latency, ms (log)")
    ax.set_ylabel("requests")
    ax.set_title("Response cache with repeated prompts (kinfer-tiny, 16 tokens)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(report.png("cache"), dpi=120)


if __name__ == "__main__":
    main()
