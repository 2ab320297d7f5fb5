"""What the pipeline adds to a request at light load, stage by stage.

    python -m benchmarks.light_load [--rate 10] [--requests 120]

Open-loop load: requests of 1 new token on kinfer-tiny (a few ms of compute) arrive as a
Poisson process at ``--rate`` per second, through a private stack (Kafka, Redis, admission,
one worker), for each batch wait in one run. Each answer carries when the worker started it
(``queue_ms`` after the request's ``created_ms``) and its compute time, so each request's
end-to-end latency splits into: client to worker start (client produce, admission, dispatch,
worker poll and batch wait), compute, and reply (the worker's transaction commit and the
client's read). Added latency = end to end - compute. Writes
benchmarks/results/light_load.json and .png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
from pathlib import Path
from typing import Any

from benchmarks.load import open_loop
from benchmarks.plots import figure
from benchmarks.stack import private_stack
from kinfer.infra.demo import percentile, wait_until_serving
from kinfer.infra.stack.stages import StageProcess, running
from kinfer.schemas import SamplingParams

RESULTS = Path(__file__).resolve().parent / "results"
WAITS_MS = (0, 5, 50)


def run(wait_ms: int, rate: float, n: int) -> dict[str, Any]:
    with private_stack() as stack:
        env = {**stack.env, "KINFER_WORKER__MAX_WAIT_MS": str(wait_ms)}
        stages = [
            StageProcess("admission", ["admission"], env, stack.logs / "admission.log"),
            StageProcess("worker", ["worker"], env, stack.logs / "worker.log"),
        ]
        with running(stages):
            asyncio.run(wait_until_serving(stack.settings))
            samples, _ = asyncio.run(open_loop(stack.settings, rate, n, SamplingParams(max_tokens=1)))
    summary: dict[str, Any] = {"max_wait_ms": wait_ms}
    for key in ("e2e_ms", "added_ms", "to_worker_ms", "compute_ms", "reply_ms"):
        values = [s[key] for s in samples]
        summary[key] = {"p50": percentile(values, 50), "p99": percentile(values, 99)}
    summary["samples"] = samples
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--requests", type=int, default=120)
    args = parser.parse_args()
    rows = []
    for wait_ms in WAITS_MS:
        row = run(wait_ms, args.rate, args.requests)
        rows.append(row)
        print(
            f"max_wait_ms {wait_ms:3}: end to end p50 {row['e2e_ms']['p50']:6.1f}"
            f" p99 {row['e2e_ms']['p99']:6.1f} ms"
            f" | added p50 {row['added_ms']['p50']:6.1f} p99 {row['added_ms']['p99']:6.1f} ms"
            f" | to worker p50 {row['to_worker_ms']['p50']:5.1f}, compute {row['compute_ms']['p50']:4.1f},"
            f" reply {row['reply_ms']['p50']:5.1f} ms",
            flush=True,
        )
    RESULTS.mkdir(exist_ok=True)
    report = {
        "machine": {"platform": platform.platform()},
        "model": "kinfer-tiny",
        "load": f"Poisson arrivals, {args.rate} req/s, {args.requests} requests, 1 new token each",
        "rows": rows,
    }
    (RESULTS / "light_load.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(rows, RESULTS / "light_load.png")


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    fig, ax = figure(7, 3.8)
    labels = [f"max wait {r['max_wait_ms']} ms" for r in rows]
    bottom = [0.0] * len(rows)
    for key, colour, name in (
        ("to_worker_ms", "#4477aa", "client to worker start"),
        ("compute_ms", "#228833", "compute"),
        ("reply_ms", "#ee6677", "reply (commit + read)"),
    ):
        values = [r[key]["p50"] for r in rows]
        ax.bar(labels, values, bottom=bottom, color=colour, label=name)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_ylabel("p50 ms")
    ax.set_title("Where a light-load request's time goes (kinfer-tiny, 1 token)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
