"""What the pipeline adds to a request at light load, stage by stage, against the floor of the
same hops through bare Kafka.

    python -m benchmarks.overhead [--rate 10] [--requests 100]

Open-loop Poisson arrivals at ``--rate`` per second of 1-token kinfer-tiny requests (about
2 ms of compute), through a private stack (Kafka, Redis, admission, one worker with torch on
one thread). Each answer carries when each stage had it (``InferenceResult.timings``), so
its latency splits into: client to admission, admission (decision and forward), admission
to worker, queue wait, compute, and reply (the worker's transaction, then the client's
read). Added latency = end to end - compute. The floor (``benchmarks.kafka_floor``) sends the
same requests over the same hops with no kinfer logic: produce, relay, answer in a Kafka
transaction, read read_committed. Writes results/overhead.json and .png.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from benchmarks import report
from benchmarks.kafka_floor import floor_latencies
from benchmarks.load import STAGES, open_loop
from benchmarks.plots import figure
from benchmarks.stack import pipeline, private_stack
from kinfer.infra.demo import percentile
from kinfer.schemas import SamplingParams, TopicNames

STAGE_NAMES = {
    "to_admission_ms": "client to admission",
    "admission_ms": "admission",
    "to_worker_ms": "admission to worker",
    "queue_ms": "queue wait",
    "compute_ms": "compute",
    "reply_ms": "reply (commit + read)",
}


def p50_p99(values: list[float]) -> dict[str, float]:
    return {"p50": percentile(values, 50), "p99": percentile(values, 99)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args()

    report.progress(0, 2, "bare Kafka floor")
    with private_stack() as stack:
        names = TopicNames(stack.settings.topic_prefix)
        floor = floor_latencies(
            stack.settings.kafka,
            requests=names.requests,
            dispatch=names.dispatch("us-west"),
            replies=names.replies,
            rate=args.rate,
            n=args.requests,
        )
    report.progress(1, 2, "kinfer pipeline")
    with private_stack() as stack, pipeline(stack, threads=1):
        samples, _ = asyncio.run(
            open_loop(stack.settings, args.rate, args.requests, SamplingParams(max_tokens=1))
        )
    report.progress(2, 2, "done")

    results: dict[str, Any] = {
        "floor_e2e_ms": p50_p99(floor),
        **{key: p50_p99([s[key] for s in samples]) for key in ("e2e_ms", "added_ms", *STAGES)},
    }
    added, base = results["added_ms"], results["floor_e2e_ms"]
    report.write(
        "overhead",
        settings={
            **vars(args),
            "model": "kinfer-tiny",
            "max_tokens": 1,
            "worker_threads": 1,
            "load": "open-loop Poisson arrivals",
        },
        results=results,
        headline=[
            ("added latency p50 / p99", f"{added['p50']:.1f} / {added['p99']:.1f} ms"),
            ("bare Kafka floor p50 / p99", f"{base['p50']:.1f} / {base['p99']:.1f} ms"),
            *(
                (f"{STAGE_NAMES[k]} p50 / p99", f"{results[k]['p50']:.1f} / {results[k]['p99']:.1f} ms")
                for k in STAGES
            ),
        ],
        samples={"kinfer": samples, "floor_e2e_ms": floor},
    )
    plot(results)


def plot(results: dict[str, Any]) -> None:
    fig, ax = figure(8, 3.6)
    for row, quantile in enumerate(("p50", "p99")):
        left = 0.0
        for key, colour in zip(
            STAGES, ("#4477aa", "#66ccee", "#228833", "#ccbb44", "#aa3377", "#ee6677"), strict=True
        ):
            width = results[key][quantile]
            ax.barh(
                f"kinfer {quantile}",
                width,
                left=left,
                color=colour,
                label=STAGE_NAMES[key] if row == 0 else None,
            )
            left += width
        ax.barh(f"bare Kafka {quantile}", results["floor_e2e_ms"][quantile], color="#999999")
    ax.set_xlabel("ms (stage percentiles stacked: a sketch of where time goes, not an exact sum)")
    ax.set_title("Light load (1-token kinfer-tiny): kinfer's stages vs the same hops on bare Kafka")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(report.png("overhead"), dpi=120)


if __name__ == "__main__":
    main()
