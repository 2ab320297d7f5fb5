"""Flow control: what cancel saves, and how fair share and priority bands share a saturated worker.

    python -m benchmarks.flow [--model smollm2-135m-instruct] [--storm 100] [--seconds 40]

One private stack (Kafka, Redis, admission, one worker on 2 engine threads), three parts:

(a) cancel storm: ``--storm`` streaming requests of ``--storm-tokens`` tokens at once, 80 %
    of them abandoned after their first chunk; once with a cancel sent for each, once with the
    client only walking away (kinfer without cancel). Tokens the worker decoded (its own
    counter) with cancel / without, and the p50 latency of the 20 % that stay, both ways.
(b) fair share: a heavy tenant sending 10x a light one's open-loop load (``--heavy-rate`` vs
    ``--light-rate``, 32-token requests) for ``--seconds``: the light tenant's p99 with the
    worker's fair queue, with ``--queue fifo`` (kinfer before fair share), and alone.
(c) priority: a paid tenant (band 1) and a free one (band 0) each sending ``--paid-rate``
    (under the worker's capacity alone, over it together): the paid tenant's p99 against it alone.

Latency is end to end; the queue wait (the result's ``queue_ms``: creation to the start of its
compute) is what fair share and bands decide, the rest is decoding in a full batch.

The worker holds up to 1024 waiting requests (``max_waiting``) so that a saturated run's
backlog is in its queue, where fair share works, not in Kafka behind it (docs: guides/flow-control.md).
Writes results/flow.json and .png.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import urllib.request
import uuid
from collections.abc import AsyncGenerator, Iterator
from contextlib import aclosing, contextmanager
from pathlib import Path
from typing import Any, cast

from prometheus_client.parser import text_string_to_metric_families

from benchmarks import report
from benchmarks.plots import figure
from benchmarks.stack import BenchStack, private_stack, worker_env
from kinfer.infra.demo import percentile, wait_until_serving
from kinfer.infra.stack.process import free_port
from kinfer.infra.stack.stages import StageProcess, running
from kinfer.producers import AsyncClient, Cancelled
from kinfer.schemas import InferenceResult, SamplingParams, TokenChunk

TIERS = """
[tiers.paid]
requests_per_min = 100000
request_burst = 100000
tokens_per_min = 100000000
token_burst = 100000000
over_limit = "queue"
priority = 1

[tiers.open]
requests_per_min = 100000
request_burst = 100000
tokens_per_min = 100000000
token_burst = 100000000
over_limit = "queue"
priority = 0

[tenants.heavy]
tier = "paid"
[tenants.light]
tier = "paid"
[tenants.paid]
tier = "paid"
[tenants.free]
tier = "open"
[tenants.bench]
tier = "paid"
[tenants.default]
tier = "paid"
"""


SMOLLM2_ENDS = (0, 2)
"""``<|endoftext|>`` and ``<|im_end|>``."""


@contextmanager
def serving(stack: BenchStack, **worker: str) -> Iterator[int]:
    """Admission and one worker; yields the worker's metrics port."""
    port = free_port()
    env = {**worker_env(stack, 2, max_waiting="1024", **worker), "KINFER_METRICS_PORT": str(port)}
    stages = [
        StageProcess("admission", ["admission"], stack.env, stack.logs / "admission.log"),
        StageProcess("worker", ["worker"], env, stack.logs / f"worker-{len(worker)}.log"),
    ]
    with running(stages):
        asyncio.run(wait_until_serving(stack.settings))
        yield port


def settled(port: int, quiet_s: float = 3.0) -> float:
    """The worker's token counter once it stopped moving (what it still held is decoded)."""
    last = -1.0
    while (now := generated_tokens(port)) != last:
        last = now
        time.sleep(quiet_s)
    return now


def generated_tokens(port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "kinfer_worker_generated_tokens_total":
                return float(sample.value)
    return 0.0


async def storm(stack: BenchStack, n: int, tokens: int, cancel: bool) -> dict[str, float]:
    """``n`` streams at once; 80 % walk away after their first chunk (cancelling or not)."""
    # No seed: never answered from the cache; SmolLM2's ends of text banned, so that every
    # stream would decode all its tokens (as a long answer does) unless it is cancelled.
    sampling = SamplingParams(
        max_tokens=tokens, temperature=0.8, logit_bias=dict.fromkeys(SMOLLM2_ENDS, -100.0)
    )
    run = uuid.uuid4().hex[:8]
    stays: list[float] = []
    async with AsyncClient(stack.settings.client_config(timeout_s=900)) as client:

        async def one(i: int) -> None:
            started = time.monotonic()
            rid = f"storm-{cancel}-{i}"
            leaves = i % 5 != 0
            prompt = f"Tell me story number {i} ({run})."
            try:
                stream = client.stream(prompt, sampling=sampling, request_id=rid)
                async with aclosing(cast(AsyncGenerator[TokenChunk | InferenceResult], stream)) as items:
                    async for item in items:
                        if leaves and isinstance(item, TokenChunk):
                            if cancel:
                                await client.cancel(rid)
                            return  # the client walks away
                        if isinstance(item, InferenceResult):
                            stays.append((time.monotonic() - started) * 1000)
            except Cancelled:
                pass

        await asyncio.gather(*(one(i) for i in range(n)))
    return {"stay_p50_ms": percentile(stays, 50)}


async def tenants_load(
    stack: BenchStack, rates: dict[str, float], seconds: float, tokens: int = 32
) -> dict[str, list[float]]:
    """Open-loop Poisson arrivals per tenant for ``seconds``; each answer's latency per tenant,
    and (under ``<tenant>:queue``) its wait before its compute began."""
    rng = random.Random(11)
    sampling = SamplingParams(max_tokens=tokens, temperature=0.8)  # no seed: never from the cache
    run = uuid.uuid4().hex[:8]
    latencies: dict[str, list[float]] = {k: [] for t in rates for k in (t, f"{t}:queue")}
    async with AsyncClient(stack.settings.client_config(timeout_s=900)) as client:

        async def one(tenant: str, i: int) -> None:
            started = time.monotonic()
            result = await client.generate(
                f"{tenant} asks question {i} ({run}).",
                sampling=sampling,
                tenant=tenant,
                session_id=f"{tenant}-{i}",
            )
            latencies[tenant].append((time.monotonic() - started) * 1000)
            latencies[f"{tenant}:queue"].append(result.queue_ms)

        async def arrivals(tenant: str, rate: float) -> None:
            tasks, end, i = [], time.monotonic() + seconds, 0
            while time.monotonic() < end:
                tasks.append(asyncio.create_task(one(tenant, i)))
                i += 1
                await asyncio.sleep(rng.expovariate(rate))
            await asyncio.gather(*tasks)

        await asyncio.gather(*(arrivals(t, r) for t, r in rates.items() if r > 0))
    return latencies


def p99(values: list[float]) -> float:
    return percentile(values, 99)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--storm", type=int, default=100)
    parser.add_argument("--storm-tokens", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--heavy-rate", type=float, default=10.0)
    parser.add_argument("--light-rate", type=float, default=1.0)
    parser.add_argument(
        "--paid-rate", type=float, default=3.0, help="each of paid and free: below capacity alone"
    )
    args = parser.parse_args()
    steps, step = 7, 0

    def progress(what: str) -> None:
        nonlocal step
        report.progress(step, steps, what)
        step += 1

    results: dict[str, Any] = {}
    with private_stack(args.model) as stack:
        Path(stack.env["KINFER_ADMISSION__TIERS_FILE"]).write_text(TIERS)
        with serving(stack) as port:
            for cancel in (False, True):
                progress(f"cancel storm, {'with' if cancel else 'without'} cancel")
                before = generated_tokens(port)
                figures = asyncio.run(storm(stack, args.storm, args.storm_tokens, cancel))
                decoded = settled(port) - before  # abandoned streams decode on without cancel
                results[f"storm_{'cancel' if cancel else 'no_cancel'}"] = {
                    **figures,
                    "tokens_decoded": decoded,
                }
            progress("light tenant alone")
            alone = asyncio.run(tenants_load(stack, {"light": args.light_rate}, args.seconds))
            progress("heavy + light, fair share")
            fair = asyncio.run(
                tenants_load(stack, {"heavy": args.heavy_rate, "light": args.light_rate}, args.seconds)
            )
            progress("paid alone")
            paid_alone = asyncio.run(tenants_load(stack, {"paid": args.paid_rate}, args.seconds))
            progress("paid + free, both saturating")
            bands = asyncio.run(
                tenants_load(stack, {"paid": args.paid_rate, "free": args.paid_rate}, args.seconds)
            )
        with serving(stack, queue="fifo"):
            progress("heavy + light, FIFO (no fair share)")
            fifo = asyncio.run(
                tenants_load(stack, {"heavy": args.heavy_rate, "light": args.light_rate}, args.seconds)
            )
    report.progress(steps, steps, "done")
    no_cancel, with_cancel = results["storm_no_cancel"], results["storm_cancel"]
    results.update(
        {
            "cancel_token_ratio": with_cancel["tokens_decoded"] / max(1.0, no_cancel["tokens_decoded"]),
            "light_p99_ms": {
                "alone": p99(alone["light"]),
                "fair": p99(fair["light"]),
                "fifo": p99(fifo["light"]),
            },
            "heavy_p99_ms": {"fair": p99(fair["heavy"]), "fifo": p99(fifo["heavy"])},
            "light_queue_p99_ms": {
                "alone": p99(alone["light:queue"]),
                "fair": p99(fair["light:queue"]),
                "fifo": p99(fifo["light:queue"]),
            },
            "paid_queue_p99_ms": {
                "alone": p99(paid_alone["paid:queue"]),
                "with_free": p99(bands["paid:queue"]),
            },
            "paid_p99_ms": {"alone": p99(paid_alone["paid"]), "with_free": p99(bands["paid"])},
            "free_p99_ms": p99(bands["free"]),
            "free_answered": len(bands["free"]),
        }
    )
    light, paid = results["light_p99_ms"], results["paid_p99_ms"]
    report.write(
        "flow",
        settings={**vars(args), "engine_threads": 2, "max_waiting": 1024, "tokens_per_request": 32},
        results=results,
        headline=[
            ("cancel storm: tokens decoded with / without cancel", f"{results['cancel_token_ratio']:.2f}"),
            (
                "cancel storm: p50 of the 20 % that stay, with / without",
                f"{with_cancel['stay_p50_ms']:.0f} / {no_cancel['stay_p50_ms']:.0f} ms",
            ),
            ("light tenant p99 ÷ alone, fair share", f"{light['fair'] / light['alone']:.2f}"),
            ("light tenant p99 ÷ alone, FIFO", f"{light['fifo'] / light['alone']:.2f}"),
            (
                "light tenant queue wait p99: alone / fair / FIFO",
                " / ".join(f"{results['light_queue_p99_ms'][k]:.0f}" for k in ("alone", "fair", "fifo"))
                + " ms",
            ),
            (
                "paid tenant p99 ÷ alone, with a free one saturating",
                f"{paid['with_free'] / paid['alone']:.2f}",
            ),
        ],
    )
    plot(results)


def plot(results: dict[str, Any]) -> None:
    fig, (left, right) = figure(10, 3.6, ncols=2)
    storm_runs = ("storm_no_cancel", "storm_cancel")
    left.bar(
        ["without cancel", "with cancel"],
        [results[k]["tokens_decoded"] for k in storm_runs],
        color=["#999999", "#4477aa"],
    )
    left.set_ylabel("tokens the worker decoded")
    left.set_title("Cancel storm: 80 % of streams abandoned after one chunk")
    light, paid = results["light_p99_ms"], results["paid_p99_ms"]
    labels = ["light alone", "light, fair", "light, FIFO", "paid alone", "paid + free"]
    values = [light["alone"], light["fair"], light["fifo"], paid["alone"], paid["with_free"]]
    right.bar(
        labels, [v / 1000 for v in values], color=["#228833", "#4477aa", "#999999", "#228833", "#aa3377"]
    )
    right.set_ylabel("p99 latency (s)")
    right.set_title("A saturated worker, shared")
    right.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(report.png("flow"), dpi=120)


if __name__ == "__main__":
    main()
