"""Continuous (iteration-level) batching against static batching, on a mix of short and long
requests, side by side in one run.

    python -m benchmarks.continuous [--threads 1]

The engine in this process (``benchmarks.engine_loop``), torch on ``--threads`` threads.
Open-loop Poisson arrivals; three of four requests are short (4 new tokens), one is long
(64), all greedy with new prompts. Continuous: the worker's own scheduler, where a request
joins the running batch between decode steps and leaves when done. Static: a batch is formed
from what has arrived and runs until its longest request is done. Reported: throughput, and
p50/p99 latency of the short and the long requests. Writes results/continuous.json and .png.
"""

from __future__ import annotations

import argparse
import uuid
from typing import Any

import torch

from benchmarks import report
from benchmarks.engine_loop import Done, continuous, poisson, static
from benchmarks.plots import figure
from benchmarks.stack import MODELS
from kinfer.consumers.engine import load_runner
from kinfer.infra.demo import percentile
from kinfer.infra.models import DEFAULT_MODEL, ModelStore
from kinfer.infra.models.pull import ensure_local
from kinfer.schemas import SamplingParams

WORKLOADS = {DEFAULT_MODEL: (2.0, 40), "kinfer-tiny": (120.0, 480)}
"""Per model: offered req/s (busy, below static's saturation) and requests."""
SHORT, LONG = SamplingParams(max_tokens=4, stop=()), SamplingParams(max_tokens=64, stop=())


def summarize(done: list[Done]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "requests_per_s": len(done) / max(d.finished_s for d in done),
        "samples": [{"kind": d.kind, "latency_ms": d.latency_ms, "tokens": d.tokens} for d in done],
    }
    for kind in ("short", "long"):
        latencies = [d.latency_ms for d in done if d.kind == kind]
        out[kind] = {
            "p50_ms": percentile(latencies, 50),
            "p99_ms": percentile(latencies, 99),
            "n": len(latencies),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results: dict[str, Any] = {}
    steps = 2 * len(WORKLOADS)
    for i, (model, (rate, n)) in enumerate(WORKLOADS.items()):
        runner = load_runner(ensure_local(model, ModelStore(MODELS)), device="cpu", served_name=model)
        run = uuid.uuid4().hex[:8]

        def make(j: int, run: str = run) -> tuple[str, SamplingParams, str]:
            long = j % 4 == 3
            return f"request {run}-{j}", LONG if long else SHORT, "long" if long else "short"

        arrivals = poisson(rate, n, make)
        report.progress(2 * i, steps, f"{model}: continuous")
        cont = summarize(continuous(runner, arrivals))
        report.progress(2 * i + 1, steps, f"{model}: static")
        stat = summarize(static(runner, arrivals))
        ratio = cont["short"]["p99_ms"] / stat["short"]["p99_ms"]
        results[model] = {"offered_per_s": rate, "continuous": cont, "static": stat, "short_p99_ratio": ratio}
    report.progress(steps, steps, "done")
    headline = []
    for model, r in results.items():
        c, s = r["continuous"], r["static"]
        headline += [
            (f"{model}: short p99, continuous / static", f"{r['short_p99_ratio']:.2f}"),
            (
                f"{model}: short p99 / long p99 (continuous | static)",
                f"{c['short']['p99_ms']:.0f} / {c['long']['p99_ms']:.0f} | "
                f"{s['short']['p99_ms']:.0f} / {s['long']['p99_ms']:.0f} ms",
            ),
            (
                f"{model}: req/s (continuous | static)",
                f"{c['requests_per_s']:.1f} | {s['requests_per_s']:.1f}",
            ),
        ]
    report.write(
        "continuous",
        settings={**vars(args), "workloads": WORKLOADS, "mix": "3 short (4 tokens) : 1 long (64 tokens)"},
        results=results,
        headline=headline,
    )
    plot(results)


def plot(results: dict[str, Any]) -> None:
    fig, axes = figure(10, 3.6, ncols=len(results))
    for ax, (model, r) in zip(axes, results.items(), strict=True):
        labels = ["short p50", "short p99", "long p50", "long p99"]
        for offset, mode, colour in ((-0.2, "continuous", "#228833"), (0.2, "static", "#999999")):
            values = [r[mode][k.split()[0]][f"{k.split()[1]}_ms"] for k in labels]
            ax.bar([i + offset for i in range(len(labels))], values, width=0.4, color=colour, label=mode)
        ax.set_xticks(range(len(labels)), labels)
        ax.set_yscale("log")
        ax.set_ylabel("ms (log)")
        ax.set_title(f"{model}: short p99 x{r['short_p99_ratio']:.2f}", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle("Continuous vs static batching, 3 short : 1 long, torch on 1 thread")
    fig.tight_layout()
    fig.savefig(report.png("continuous"), dpi=120)


if __name__ == "__main__":
    main()
