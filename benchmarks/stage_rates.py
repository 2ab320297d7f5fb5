"""Each stage alone, side by side: how fast admission forwards and a worker answers.

    python -m benchmarks.stage_rates [--requests 2000] [--max-tokens 16]

admission alone: records written straight to the ingress topic, timed until all
are forwarded to dispatch topics. worker alone: records written straight to a
dispatch topic, timed until all are answered. Compare both with
benchmarks/pipeline_vs_engine.py's whole-pipeline figure to see where time goes.
Writes benchmarks/results/stage_rates.json and .png.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

from benchmarks.plots import requests_per_second_bars
from benchmarks.stack import private_stack
from kinfer.infra.stack.stages import StageProcess, running
from kinfer.schemas import InferenceRequest, ReplyAddress, SamplingParams, TopicNames, encode
from kinfer.schemas.kafka_client import client_config

RESULTS = Path(__file__).resolve().parent / "results"


def end_offsets(bootstrap: str, topics: list[str]) -> int:
    consumer = Consumer(client_config(bootstrap, {"group.id": "bench-offsets"}))
    try:
        total = 0
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            total += sum(
                consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in meta.partitions
            )
        return total
    finally:
        consumer.close()


def timed(
    bootstrap: str, records: list[bytes], to: str, watch: list[str], expect: int, timeout_s: float
) -> float:
    """Requests per second from producing ``records`` until ``watch`` grew by ``expect``."""
    producer = Producer(client_config(bootstrap, {"linger.ms": 5}))
    before = end_offsets(bootstrap, watch)
    started = time.monotonic()
    for value in records:
        producer.produce(to, value, key=b"bench")
        producer.poll(0)
    producer.flush(30)
    while end_offsets(bootstrap, watch) - before < expect:
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"{watch} grew by less than {expect} in {timeout_s}s")
        time.sleep(0.05)
    return len(records) / (time.monotonic() - started)


def requests(names: TopicNames, n: int, sampling: SamplingParams) -> list[bytes]:
    return [
        encode(
            InferenceRequest(
                request_id=uuid.uuid4().hex,
                tenant="bench",
                prompt=f"stage rate {i}",
                reply_to=ReplyAddress(names.replies, 0),
                sampling=sampling,
                user=f"u{i}",
            )
        )
        for i in range(n)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--max-tokens", type=int, default=16)
    args = parser.parse_args()
    results: dict[str, float] = {}
    with private_stack() as stack:
        names = TopicNames(stack.settings.topic_prefix)
        bootstrap = stack.settings.bootstrap
        env = stack.env
        regions = list(stack.settings.region_weights)
        # temperature > 0 without a seed: not cacheable, so every record is really admitted and run.
        sampling = SamplingParams(max_tokens=args.max_tokens, temperature=1.0)
        greedy = SamplingParams(max_tokens=args.max_tokens)  # the worker has no cache: greedy runs too
        with running([StageProcess("admission", ["admission"], env, stack.logs / "admission.log")]):
            time.sleep(8)  # Faust joins its group
            results["admission_req_per_s"] = timed(
                bootstrap,
                requests(names, args.requests, sampling),
                names.requests,
                [names.dispatch(r) for r in regions],
                args.requests,
                300,
            )
        with running([StageProcess("worker", ["worker"], env, stack.logs / "worker.log")]):
            time.sleep(6)
            # Each answer adds a reply record; transaction markers add a few offsets more.
            for name, kind in (("worker_greedy_req_per_s", greedy), ("worker_sampled_req_per_s", sampling)):
                results[name] = timed(
                    bootstrap,
                    requests(names, args.requests, kind),
                    names.dispatch(stack.settings.region),
                    [names.replies],
                    args.requests,
                    600,
                )
    report = {"config": vars(args), "results": results}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "stage_rates.json").write_text(json.dumps(report, indent=2) + "\n")
    labels = ["admission alone", "worker alone\n(greedy)", "worker alone\n(sampled)"]
    requests_per_second_bars(
        labels, list(results.values()), "kinfer stages measured alone", RESULTS / "stage_rates.png"
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
