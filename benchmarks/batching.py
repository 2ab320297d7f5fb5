"""The batched worker vs a batch-1 consumer (what a plain Kafka consumer does), under
open-loop load at several rates.

    python -m benchmarks.batching [--max-tokens 16]

For each model (SmolLM2-135M, the real workload; kinfer-tiny, where the pipeline's own cost
dominates): one private stack and admission, and per worker kind (``--max-batch-requests``
32 or 1) a fresh worker with torch held to one thread (``OMP_NUM_THREADS=1``, standing in for
an accelerator of fixed size) in both. For each offered rate, Poisson arrivals; reported: the
answers' throughput (answered / wall from first send to last answer), p50 and p99 latency.
Saturation throughput is the best throughput either kind reached; their ratio is the batching
gain. All in one run, side by side. Writes benchmarks/results/batching.json and .png.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.load import open_loop
from benchmarks.plots import figure
from benchmarks.stack import MODELS, private_stack, worker_env
from kinfer.infra.demo import percentile, wait_until_serving
from kinfer.infra.models import DEFAULT_MODEL, ModelStore
from kinfer.infra.models.pull import ensure_local
from kinfer.infra.stack.stages import StageProcess, running
from kinfer.schemas import SamplingParams

KINDS = {"batched (32)": 32, "batch-1 consumer": 1}
LOADS = {DEFAULT_MODEL: ((1.0, 3.0, 8.0), 24), "kinfer-tiny": ((20.0, 60.0, 150.0, 400.0), 200)}
"""Per model: offered rates (req/s) and requests per rate."""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--max-tokens", type=int, default=16)
    args = parser.parse_args()
    sampling = SamplingParams(max_tokens=args.max_tokens, stop=())
    results: dict[str, Any] = {}
    for i, (model, (rates, requests)) in enumerate(LOADS.items()):
        report.progress(i, len(LOADS), model)
        if model != "kinfer-tiny":
            ensure_local(model, ModelStore(MODELS))
        results[model] = compare(model, rates, requests, sampling)
    report.progress(len(LOADS), len(LOADS), "done")
    report.write(
        "batching",
        settings={**vars(args), "loads": LOADS, "worker_threads": 1, "load": "open-loop Poisson"},
        results=results,
        headline=[
            (
                f"{model}: saturation, batched / batch-1",
                f"{r['batched_over_batch1']:.1f}x ({r['saturation_per_s']['batched (32)']:.1f}"
                f" vs {r['saturation_per_s']['batch-1 consumer']:.1f} req/s)",
            )
            for model, r in results.items()
        ],
    )
    plot(results, report.png("batching"))


def compare(model: str, rates: tuple[float, ...], requests: int, sampling: SamplingParams) -> dict[str, Any]:
    rows: dict[str, list[dict[str, Any]]] = {}
    with private_stack(model) as stack:
        env = worker_env(stack, threads=1)
        with running([StageProcess("admission", ["admission"], env, stack.logs / "admission.log")]):
            for kind, batch in KINDS.items():
                kind_env = {**env, "KINFER_WORKER__MAX_BATCH_REQUESTS": str(batch)}
                worker = StageProcess(
                    f"worker-{batch}", ["worker"], kind_env, stack.logs / f"worker-{batch}.log"
                )
                with running([worker]):
                    asyncio.run(wait_until_serving(stack.settings))
                    rows[kind] = []
                    for rate in rates:
                        samples, wall = asyncio.run(open_loop(stack.settings, rate, requests, sampling))
                        e2e = [s["e2e_ms"] for s in samples]
                        row = {
                            "offered_per_s": rate,
                            "answered_per_s": len(samples) / wall,
                            "tokens_per_s": sum(s["tokens"] for s in samples) / wall,
                            "p50_ms": percentile(e2e, 50),
                            "p99_ms": percentile(e2e, 99),
                            "e2e_ms": e2e,
                        }
                        rows[kind].append(row)
                        print(
                            f"{model:22} {kind:17} offered {rate:5.0f}/s"
                            f"  answered {row['answered_per_s']:6.1f}/s"
                            f"  p50 {row['p50_ms']:7.1f} ms  p99 {row['p99_ms']:7.1f} ms",
                            flush=True,
                        )
    saturation = {kind: max(r["answered_per_s"] for r in kind_rows) for kind, kind_rows in rows.items()}
    ratio = saturation["batched (32)"] / saturation["batch-1 consumer"]
    print(f"{model}: saturation {saturation}; batched / batch-1 = {ratio:.2f}x", flush=True)
    return {
        "requests_per_rate": requests,
        "rows": rows,
        "saturation_per_s": saturation,
        "batched_over_batch1": ratio,
    }


def plot(report: dict[str, Any], path: Path) -> None:
    models = [m for m in LOADS if m in report]
    fig, _ = figure(11, 3.4 * len(models))
    fig.clf()
    for i, model in enumerate(models):
        left, right = fig.add_subplot(len(models), 2, 2 * i + 1), fig.add_subplot(len(models), 2, 2 * i + 2)
        for kind, kind_rows in report[model]["rows"].items():
            offered = [r["offered_per_s"] for r in kind_rows]
            left.plot(offered, [r["answered_per_s"] for r in kind_rows], marker="o", label=kind)
            right.plot(offered, [r["p50_ms"] for r in kind_rows], marker="o", label=f"{kind} p50")
            right.plot(
                offered, [r["p99_ms"] for r in kind_rows], marker="x", linestyle="--", label=f"{kind} p99"
            )
        left.set_title(f"{model}: answered vs offered (req/s)", fontsize=9)
        right.set_title(f"{model}: latency (ms, log)", fontsize=9)
        right.set_yscale("log")
        left.legend(fontsize=7)
        right.legend(fontsize=7)
    fig.suptitle("Batched worker vs batch-1 consumer, open-loop load, torch on 1 thread")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
