"""Tensor and pipeline parallel workers on this machine: speed, latency, memory per rank, and
where a step's time goes.

    python -m benchmarks.parallel [--requests 16] [--max-tokens 32]

For each model and (T, P) split, T x P ranks (gloo, CPU) decode the same greedy requests in
one continuous batch, started together. Rank 0 reports tokens/s, each request's latency
(p50/p99), every rank's weight bytes, and a profile of its steps: time in collectives and
point-to-point transfers (torch's c10d / gloo ops) vs everything else. All splits run in one
run, one after the other, on one machine. Writes benchmarks/results/parallel.json and .png.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks import report
from benchmarks.plots import figure
from benchmarks.stack import MODELS
from kinfer.consumers.engine import GenerationInput, GenerationOutput
from kinfer.consumers.parallel.channel import Channel
from kinfer.consumers.parallel.group import RankAddress, join_group
from kinfer.consumers.parallel.layout import ParallelLayout
from kinfer.consumers.parallel.replica import ParallelRunner, follow, gather_sizes
from kinfer.consumers.parallel.shard import load_shard
from kinfer.infra.models import DEFAULT_MODEL, ModelStore
from kinfer.infra.models.pull import ensure_local
from kinfer.infra.stack.process import free_port
from kinfer.infra.worker_ranks import share_cores
from kinfer.schemas import SamplingParams

RESULTS = Path(__file__).resolve().parent / "results"
SPLITS = {"kinfer-tiny": [(1, 1), (2, 1), (1, 2), (2, 2)], DEFAULT_MODEL: [(1, 1), (3, 1), (1, 2)]}
"""(T, P) per model; SmolLM2 (9 heads, 3 KV heads) admits T in {1, 3}."""
COMM = ("c10d::", "gloo:", "nccl:", "record_param_comms")


def workload(n: int, max_tokens: int) -> list[GenerationInput]:
    prompts = ["What is the capital of France?", "Name three colours.", "What is Kafka?", "Say hello."]
    return [
        GenerationInput(f"{prompts[i % 4]} ({i})", SamplingParams(max_tokens=max_tokens)) for i in range(n)
    ]


def measure(runner: ParallelRunner, items: list[GenerationInput]) -> dict[str, Any]:
    """One continuous batch; latency = start to each request's last token."""
    runner.generate(items[:1])  # warm up
    running = runner.batch()
    started = time.perf_counter()
    running.join(list(enumerate(items)))
    latencies: list[float] = []
    tokens = 0
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        while running:
            for _, output in running.step():
                assert isinstance(output, GenerationOutput), output  # torch fails whole batches
                latencies.append(time.perf_counter() - started)
                tokens += output.completion_tokens
    wall = time.perf_counter() - started
    running.close()
    events = prof.key_averages()
    total_us = sum(e.self_cpu_time_total for e in events)
    comm_us = sum(e.self_cpu_time_total for e in events if e.key.startswith(COMM))
    latencies.sort()
    return {
        "tokens_per_s": tokens / wall,
        "p50_s": statistics.median(latencies),
        "p99_s": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "communication_share": comm_us / total_us if total_us else 0.0,
        "wall_s": wall,
    }


def rank_main(args: argparse.Namespace) -> None:
    layout = ParallelLayout(args.tensor, args.pipeline)
    share_cores(layout.world_size)
    group = join_group(layout, RankAddress(args.rank, "127.0.0.1", args.port), torch.device("cpu"), 300)
    local = load_shard(args.model, group, dtype=torch.float32)
    sizes = gather_sizes(group, local.parameter_bytes())
    channel = Channel(group)
    if args.rank:
        follow(local, channel)
    else:
        runner = ParallelRunner(local, channel)
        result = measure(runner, workload(args.requests, args.max_tokens))
        runner.stop()
        Path(args.out).write_text(json.dumps({**result, "bytes_per_rank": sizes}))
    group.close()


def run_split(model: str, path: str, tensor: int, pipeline: int, args: argparse.Namespace) -> dict[str, Any]:
    port, out = free_port(), RESULTS / "parallel-rank0.json"
    common = ["--model", path, "--tensor", str(tensor), "--pipeline", str(pipeline), "--port", str(port)]
    common += ["--requests", str(args.requests), "--max-tokens", str(args.max_tokens), "--out", str(out)]
    procs = [
        subprocess.Popen([sys.executable, "-m", "benchmarks.parallel", "--rank", str(r), *common])
        for r in range(tensor * pipeline)
    ]
    codes = [p.wait(timeout=1200) for p in procs]
    assert codes == [0] * len(procs), f"{model} T={tensor} P={pipeline}: ranks exited {codes}"
    result: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    return {"model": model, "tensor": tensor, "pipeline": pipeline, **result}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--rank", type=int, help=argparse.SUPPRESS)
    for hidden in ("--model", "--tensor", "--pipeline", "--port", "--out"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rank is not None:
        args.tensor, args.pipeline, args.port = int(args.tensor), int(args.pipeline), int(args.port)
        rank_main(args)
        return
    RESULTS.mkdir(exist_ok=True)
    rows: list[dict[str, Any]] = []
    total = sum(len(splits) for splits in SPLITS.values())
    for model, splits in SPLITS.items():
        path = model if model == "kinfer-tiny" else ensure_local(model, ModelStore(MODELS))
        for tensor, pipeline in splits:
            report.progress(len(rows), total, f"{model} T={tensor} P={pipeline}")
            row = run_split(model, path, tensor, pipeline, args)
            rows.append(row)
            print(table_row(row), flush=True)
    report.progress(total, total, "done")
    report.write(
        "parallel",
        settings={
            "requests": args.requests,
            "max_tokens": args.max_tokens,
            "cpu_threads": torch.get_num_threads(),
            "backend": "gloo (CPU ranks, one process each, on one host)",
        },
        results=rows,
        headline=[
            (f"{r['model']} T={r['tensor']} P={r['pipeline']}: tok/s", f"{r['tokens_per_s']:.0f}")
            for r in rows
        ],
    )
    plot(rows, report.png("parallel"))


def table_row(row: dict[str, Any]) -> str:
    per_rank = "/".join(f"{b / 1e6:.1f}" for b in row["bytes_per_rank"])
    return (
        f"{row['model']:24} T={row['tensor']} P={row['pipeline']}  {row['tokens_per_s']:7.1f} tok/s  "
        f"p50 {row['p50_s']:6.2f} s  p99 {row['p99_s']:6.2f} s  MB/rank {per_rank}  "
        f"comm {100 * row['communication_share']:4.1f} %"
    )


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    fig, axes = figure(12, 3.8, ncols=3)
    labels = [f"{r['model'].split('-')[0]}\nT{r['tensor']}P{r['pipeline']}" for r in rows]
    colours = ["#4477aa" if r["model"] == "kinfer-tiny" else "#ee6677" for r in rows]
    panels = (
        ([r["tokens_per_s"] for r in rows], "tokens/s (one batch)"),
        ([max(r["bytes_per_rank"]) / 1e6 for r in rows], "largest rank's weights (MB)"),
        ([100 * r["communication_share"] for r in rows], "rank 0's time in communication (%)"),
    )
    for ax, (values, title) in zip(axes, panels, strict=True):
        ax.bar(labels, values, color=colours)
        ax.set_title(title)
        ax.tick_params(axis="x", labelsize=7)
    fig.suptitle("Parallel ranks on this CPU (gloo): kinfer-tiny (blue), SmolLM2-135M (red)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
