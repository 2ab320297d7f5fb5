"""10,000 fuzzed records through the running pipeline, with valid requests among them:
every valid one is answered exactly once and promptly throughout, every hostile one is
answered or dead-lettered exactly once, and no stage restarts or exits."""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import random
import time
from collections.abc import Callable

import pytest
from confluent_kafka import Producer

from kinfer.producers import AsyncClient
from kinfer.schemas import (
    InferenceRequest,
    ReplyAddress,
    SamplingParams,
    TokenChunk,
    decode_dead_letter,
    decode_reply,
    encode,
    headers,
)
from tests.conftest import Services
from tests.integration.conftest import Pipeline, consumed_to_end, read_all, serving, wait_for

HOSTILE = 10_000
VALID_EVERY = 10
FIELDS = [
    "tenant",
    "prompt",
    "model",
    "user",
    "session_id",
    "deadline_ms",
    "reply_to",
    "sampling",
    "messages",
    "stream",
    "schema_version",
    "surprise",
]
VALUES: list[object] = [
    None,
    True,
    -1,
    0,
    2**31,
    2**64,
    1e-300,
    1e308,
    "",
    "x" * 300,
    "\u00b2",
    [],
    {},
    [[[]]],
    {"a": {"b": None}},
    {"temperature": 1e-300},
    {"seed": 2**64},
    {"top_p": 0},
    {"topic": "nope", "partition": 0},
    {"topic": "k", "partition": 2**40},
    [{"role": "user", "content": 5}],
    [{"role": "boss", "content": "x"}],
]


def hostile(
    rng: random.Random, i: int, template: dict[str, object], topic: str, partition: int
) -> tuple[bytes, list[tuple[str, bytes]]]:
    rid = f"h{i}"
    body = {**template, "request_id": rid}
    kind = rng.randrange(8)
    if kind == 0:
        value = rng.randbytes(rng.randrange(1, 300))
    elif kind == 1:
        body[rng.choice(FIELDS)] = rng.choice(VALUES)
        value = json.dumps(body).encode()
    elif kind == 2:
        value = json.dumps(body).encode()[: rng.randrange(1, 60)]
    elif kind == 3:
        depth = rng.randrange(100, 20_000)
        value = b'{"request_id": "' + rid.encode() + b'", "x": ' + b"[" * depth + b"]" * depth + b"}"
    elif kind == 4:
        value = json.dumps(body).encode().replace(b"fuzz", b"f\xff\xfez")
    elif kind == 5:
        body["reply_to"] = {"topic": topic, "partition": rng.choice([99, -1, 2**31])}
        value = json.dumps(body).encode()
    elif kind == 6:
        body["sampling"] = {
            "temperature": rng.choice([1e-300, -0.0001, 5.0001]),
            "seed": rng.choice([2**64, -(2**63) - 1, 1]),
        }
        value = json.dumps(body).encode()
    else:
        body["prompt"] = "y" * rng.choice([256 * 1024 + 1, 600_000])
        value = json.dumps(body).encode()
    hdrs = [(headers.REQUEST_ID, rid.encode())]
    if rng.random() < 0.8:
        hdrs += [
            (headers.REPLY_TOPIC, topic.encode()),
            (headers.REPLY_PARTITION, rng.choice([str(partition), "\u00b2", "99", "x"]).encode()),
        ]
    return value, hdrs


@pytest.mark.slow
def test_ten_thousand_fuzzed_records_with_valid_ones_among_them(
    make_pipeline: Callable[[str], Pipeline], services: Services, prefix: str
) -> None:
    pipeline = serving(make_pipeline, prefix)
    admission, worker = pipeline.stages
    names = pipeline.names
    rng = random.Random(20261125)
    partition = 2
    template = json.loads(
        encode(
            InferenceRequest(
                request_id="t",
                tenant="default",
                prompt="fuzz me",
                reply_to=ReplyAddress(names.replies, partition),
                sampling=SamplingParams(max_tokens=2),
            )
        )
    )
    producer = Producer(
        {"bootstrap.servers": services.bootstrap, "message.max.bytes": 2 * 1024 * 1024, "linger.ms": 5}
    )

    async def scenario() -> list[float]:
        config = services.settings(prefix).client_config(timeout_s=120, reply_partition=partition)
        async with AsyncClient(config) as client:
            latencies: list[float] = []
            finished: list[float] = []

            async def ask(j: int) -> None:
                started = time.monotonic()
                await client.generate(f"valid {j}", sampling=SamplingParams(max_tokens=2), request_id=f"v{j}")
                latencies.append(time.monotonic() - started)
                finished.append(time.monotonic())

            tasks = []
            for i in range(HOSTILE):
                value, hdrs = hostile(rng, i, template, names.replies, partition)
                producer.produce(names.requests, value, headers=hdrs)
                producer.poll(0)
                if i % VALID_EVERY == 0:
                    tasks.append(asyncio.create_task(ask(i // VALID_EVERY)))
                    await asyncio.sleep(0.004)
            producer.flush(60)
            await asyncio.gather(*tasks)
            assert client.router.stats.duplicate_answers == 0
            gaps = [b - a for a, b in itertools.pairwise(sorted(finished))]
            print(f"valid: longest time with no valid answer {max(gaps):.2f}s")
            assert max(gaps) < 5, "valid requests stalled behind hostile ones"
            return latencies

    latencies = asyncio.run(scenario())
    assert len(latencies) == HOSTILE // VALID_EVERY
    # Latency includes queueing behind the flood (admission decides ~500-700 records/s here).
    print(f"valid: {len(latencies)} answered, slowest {max(latencies):.2f}s")

    # Every valid request answered says nothing of the hostile records on other partitions:
    # read the topics once admission has decided (and committed) every record.
    wait_for(
        lambda: consumed_to_end(services.bootstrap, f"{prefix}-admission", names.requests),
        120,
        "admission to decide every record",
        every_s=1.0,
    )
    terminal = [decode_reply(v or b"") for v, _ in read_all(services.bootstrap, names.replies, 60)]
    replies = collections.Counter(r.request_id for r in terminal if not isinstance(r, TokenChunk))
    letters = collections.Counter(
        decode_dead_letter(v or b"").request_id
        for v, _ in read_all(services.bootstrap, names.requests_dlq, 60)
    )
    hostile_ids = [f"h{i}" for i in range(HOSTILE)]
    assert all(replies[f"v{j}"] == 1 for j in range(HOSTILE // VALID_EVERY))
    assert all(replies[h] <= 1 and letters[h] <= 1 and replies[h] + letters[h] >= 1 for h in hostile_ids), [
        (h, replies[h], letters[h])
        for h in hostile_ids
        if not (replies[h] <= 1 and letters[h] <= 1 and replies[h] + letters[h] >= 1)
    ][:10]
    answered, lettered = sum(1 for h in hostile_ids if replies[h]), sum(1 for h in hostile_ids if letters[h])
    print(f"hostile: {answered} answered, {lettered} dead-lettered")
    assert admission.alive() and worker.alive()
    assert "Crashed" not in admission.tail(5000) and "Traceback" not in worker.tail(5000)
