"""Decisions per second of one admission process, by path: admitted and forwarded, answered
from the response cache, refused over a free tier's limit, and queued over a paid tier's.

    python -m benchmarks.admission [--requests 2000]

A private stack (Kafka, Redis) and one `kinfer admission`, no worker. For each path,
``--requests`` records (with the SDK's headers) are written straight to the ingress topic as
fast as a producer can, a backlog that keeps admission saturated; decisions/s = records /
(time from the first write until the last decision's effect is visible: forwards on the
dispatch topics, answers on the replies topic, entries in the delay queue). Writes
results/admission.json and .png.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from confluent_kafka import Consumer, Producer

from benchmarks import report
from benchmarks.plots import requests_per_second_bars
from benchmarks.stack import BenchStack, end_offset, private_stack
from kinfer.infra.stack.stages import StageProcess, running
from kinfer.schemas import (
    InferenceRequest,
    InferenceResult,
    ReplyAddress,
    SamplingParams,
    TopicNames,
    Usage,
    encode,
)
from kinfer.schemas.cache import cache_key, cache_redis_key
from kinfer.schemas.codec import request_headers
from kinfer.schemas.kafka_client import client_config

TIERS = """
[tiers.trickle]
requests_per_min = 1
request_burst = 1
tokens_per_min = 1000000
token_burst = 1000000
over_limit = "reject"

[tiers.trickle_paid]
requests_per_min = 1
request_burst = 1
tokens_per_min = 1000000
token_burst = 1000000
over_limit = "queue"

[tenants.limited]
tier = "trickle"
[tenants.queued]
tier = "trickle_paid"
"""
TENANTS = 64
"""Tenants of the many-tenant runs: each tenant's records are decided in arrival order, one
at a time, so one tenant alone measures the serial path and many measure the agent's
concurrency."""
ENTERPRISE = "".join(f'[tenants.bench-{i}]\ntier = "enterprise"\n' for i in range(TENANTS))
SAMPLED = SamplingParams(max_tokens=16, temperature=1.0)
"""Not cacheable: admitted and forwarded."""
GREEDY = SamplingParams(max_tokens=16)


def end_offsets(consumer: Consumer, topics: list[str]) -> int:
    total = 0
    for topic in topics:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        total += sum(end_offset(consumer, topic, p) for p in meta.partitions)
    return total


def requests(
    names: TopicNames, tenant: str, n: int, sampling: SamplingParams, tenants: int = 1
) -> list[InferenceRequest]:
    """``n`` requests of ``tenant`` (with ``tenants`` > 1: of ``tenant-0`` .. round robin)."""
    run = uuid.uuid4().hex[:8]
    return [
        InferenceRequest(
            request_id=uuid.uuid4().hex,
            tenant=tenant if tenants == 1 else f"{tenant}-{i % tenants}",
            prompt=f"admission path {run} {i}",
            reply_to=ReplyAddress(names.replies, i % 16),
            sampling=sampling,
            user=f"u{i}",
        )
        for i in range(n)
    ]


def timed(stack: BenchStack, batch: list[InferenceRequest], done: Callable[[], int], expect: int) -> float:
    """Decisions/s: write ``batch`` to the ingress topic, wait until ``done()`` grew by ``expect``."""
    names = TopicNames(stack.settings.topic_prefix)
    producer = Producer(client_config(stack.settings.kafka, {"linger.ms": 5, "acks": "all"}))
    before = done()
    started = time.monotonic()
    for request in batch:
        producer.produce(
            names.requests, encode(request), request.tenant.encode(), headers=request_headers(request)
        )
        producer.poll(0)
    producer.flush(30)
    while done() - before < expect:
        if time.monotonic() - started > 300:
            raise TimeoutError(f"only {done() - before} of {expect} decisions in 300 s")
        time.sleep(0.02)
    return len(batch) / (time.monotonic() - started)


def cache_answers(stack: BenchStack, batch: list[InferenceRequest]) -> None:
    """Put an answer for each request in the response cache, as a worker would have."""
    client = redis.Redis.from_url(stack.settings.redis)
    prefix = stack.settings.topic_prefix
    with client.pipeline(transaction=False) as pipe:
        for request in batch:
            key = cache_key(request)
            assert key is not None
            answer = InferenceResult(
                request_id="cached", text="an answer", finish_reason="length", usage=Usage(4, 16), model="m"
            )
            pipe.set(cache_redis_key(prefix, key), encode(answer), ex=3600)
        pipe.execute()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    n = args.requests
    results: dict[str, float] = {}
    with private_stack() as stack:
        names = TopicNames(stack.settings.topic_prefix)
        tiers = Path(stack.env["KINFER_ADMISSION__TIERS_FILE"])
        tiers.write_text(TIERS + ENTERPRISE)
        meter = Consumer(client_config(stack.settings.kafka, {"group.id": "bench-meter"}))
        dispatch = [names.dispatch(r) for r in stack.settings.region_weights]
        queue = redis.Redis.from_url(stack.settings.redis)

        def forwarded() -> int:
            return end_offsets(meter, dispatch)

        def answered() -> int:
            return end_offsets(meter, [names.replies])

        def queued() -> int:
            return int(queue.llen(f"{names.prefix}:delay:q:queued"))

        admission = StageProcess("admission", ["admission"], stack.env, stack.logs / "admission.log")
        with running([admission]):
            report.progress(0, 6, "warm up")
            timed(stack, requests(names, "bench", 200, SAMPLED, TENANTS), forwarded, 200)
            report.progress(1, 6, f"admit and forward, {TENANTS} tenants")
            many = requests(names, "bench", n, SAMPLED, TENANTS)
            results[f"admitted, {TENANTS} tenants"] = timed(stack, many, forwarded, n)
            report.progress(2, 6, "admit and forward, 1 tenant")
            results["admitted, 1 tenant"] = timed(stack, requests(names, "bench-0", n, SAMPLED), forwarded, n)
            report.progress(3, 6, f"cache hit, {TENANTS} tenants")
            hits = requests(names, "bench", n, GREEDY, TENANTS)
            cache_answers(stack, hits)
            results[f"cache hit, {TENANTS} tenants"] = timed(stack, hits, answered, n)
            report.progress(4, 6, "rate limited (free tier), 1 tenant")
            # The first of the tenant's burst of 1 is admitted; every other is refused.
            limited = requests(names, "limited", n, SAMPLED)
            results["rate limited, 1 tenant"] = timed(stack, limited, answered, n - 1)
            report.progress(5, 6, "queued (paid tier), 1 tenant")
            results["queued, 1 tenant"] = timed(stack, requests(names, "queued", n, SAMPLED), queued, n - 1)
            report.progress(6, 6, "done")
        meter.close()
    slowest = min(results, key=lambda k: results[k])
    report.write(
        "admission",
        settings={**vars(args), "load": "a backlog written to the ingress topic as fast as possible"},
        results=results,
        headline=[(f"decisions/s, {path}", f"{rate:.0f}") for path, rate in results.items()]
        + [("slowest path", slowest)],
    )
    plot(results)


def plot(results: dict[str, Any]) -> None:
    requests_per_second_bars(
        list(results),
        list(results.values()),
        "One admission process: decisions/s by path",
        report.png("admission"),
    )


if __name__ == "__main__":
    main()
