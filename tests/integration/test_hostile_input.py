"""Records kinfer's own clients never send, written with a plain confluent-kafka producer
as a hostile client would: each gets exactly one terminal answer where an address can be
read, a dead letter otherwise or besides, and none of them stalls or stops a stage."""

from __future__ import annotations

import asyncio
import collections
import json
import time
from collections.abc import Callable

from confluent_kafka import Consumer, Producer, TopicPartition

from kinfer.producers import AsyncClient
from kinfer.schemas import (
    InferenceRequest,
    ReplyAddress,
    SamplingParams,
    decode_dead_letter,
    decode_reply,
    encode,
    headers,
    limits,
)
from tests.conftest import Services
from tests.integration.conftest import Pipeline, read_all, serving

REPLY_PARTITION = 3
"""The partition these tests read answers from (the suite's pipelines have 4)."""


def valid(prefix: str, rid: str, **kw: object) -> dict[str, object]:
    request = InferenceRequest(
        request_id=rid,
        tenant="default",
        prompt=f"valid {rid}",
        reply_to=ReplyAddress(f"{prefix}.replies", REPLY_PARTITION),
        sampling=SamplingParams(max_tokens=4),
    )
    body: dict[str, object] = json.loads(encode(request))
    body.update(kw)
    return body


def address_headers(prefix: str, rid: str, partition: str = str(REPLY_PARTITION)) -> list[tuple[str, bytes]]:
    return [
        (headers.REQUEST_ID, rid.encode()),
        (headers.REPLY_TOPIC, f"{prefix}.replies".encode()),
        (headers.REPLY_PARTITION, partition.encode()),
    ]


class Replies:
    """Every reply on the test's partition, by request id, from the moment it is made."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": "hostile", "isolation.level": "read_committed"}
        )
        tp = TopicPartition(topic, REPLY_PARTITION)
        _, end = self.consumer.get_watermark_offsets(tp, timeout=10)
        self.consumer.assign([TopicPartition(topic, REPLY_PARTITION, end)])
        self.by_id: dict[str, list[object]] = collections.defaultdict(list)

    def wait_for(self, ids: set[str], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not ids <= self.by_id.keys() and time.monotonic() < deadline:
            for record in self.consumer.consume(100, 0.2):
                if record.error() is None:
                    reply = decode_reply(record.value() or b"")
                    self.by_id[reply.request_id].append(reply)

    def close(self) -> None:
        self.consumer.close()


def test_poison_records_are_answered_once_or_dead_lettered_and_stall_nothing(
    make_pipeline: Callable[[str], Pipeline], services: Services, prefix: str
) -> None:
    pipeline = serving(make_pipeline, prefix)
    admission, worker = pipeline.stages
    names = pipeline.names
    producer = Producer(
        {"bootstrap.servers": services.bootstrap, "message.max.bytes": 2 * limits.MAX_MESSAGE_BYTES}
    )
    replies = Replies(services.bootstrap, names.replies)

    def send(topic: str, value: bytes, hdrs: list[tuple[str, bytes]] | None = None) -> None:
        producer.produce(topic, value, headers=hdrs or [])

    answered: dict[str, str] = {}  # request id -> the one error code it must get
    dead_only: list[str] = []  # request ids that can only be dead-lettered
    # Reply addresses no answer can reach: dead letters, never a stalled worker.
    for rid, to in (
        ("p99", {"topic": names.replies, "partition": 99}),
        ("nosuch", {"topic": "no.such.topic", "partition": 0}),
        ("own", {"topic": names.requests, "partition": 0}),
        ("events", {"topic": names.events, "partition": 0}),
    ):
        send(names.requests, json.dumps(valid(prefix, rid, reply_to=to)).encode())
        dead_only.append(rid)
    for i in range(8):  # eight refusals for a missing topic once stalled admission
        send(
            names.requests,
            b"{not json",
            [
                (headers.REQUEST_ID, f"m{i}".encode()),
                (headers.REPLY_TOPIC, b"no.such.topic"),
                (headers.REPLY_PARTITION, b"0"),
            ],
        )
        dead_only.append(f"m{i}")
    # Straight to the dispatch topic: the worker's own checks.
    send(
        names.dispatch("us-west"),
        json.dumps(valid(prefix, "d99", reply_to={"topic": names.replies, "partition": 99})).encode(),
    )
    dead_only.append("d99")
    # Bodies that are wrong in every way a decoder can see; each is answered invalid_request.
    bodies = {
        "deep": b'{"request_id": "deep", "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        "utf8": json.dumps(valid(prefix, "utf8")).encode().replace(b"valid utf8", b"valid \xff\xfe"),
        "tiny-temp": json.dumps(valid(prefix, "tiny-temp", sampling={"temperature": 1e-300})).encode(),
        "big-seed": json.dumps(
            valid(prefix, "big-seed", sampling={"temperature": 0.5, "seed": 2**64})
        ).encode(),
        "reply-extra": json.dumps(
            valid(
                prefix, "reply-extra", reply_to={"topic": names.replies, "partition": REPLY_PARTITION, "x": 1}
            )
        ).encode(),
        "long-user": json.dumps(valid(prefix, "long-user", user="u" * 500)).encode(),
        "huge": json.dumps(valid(prefix, "huge", prompt="x" * (limits.MAX_MESSAGE_BYTES - 4096))).encode(),
    }
    for rid, body in bodies.items():
        send(names.requests, body, address_headers(prefix, rid))
        answered[rid] = "invalid_request"
    # Valid, but for a model nobody serves: refused at once, and not a dead letter.
    send(names.requests, json.dumps(valid(prefix, "wrong-model", model="gpt-4")).encode())
    send(names.requests, b"{}", address_headers(prefix, "sup", partition="\u00b2"))  # isdigit() but not int()
    dead_only.append("sup")
    producer.flush(30)

    # Valid requests behind all of that are answered promptly.
    async def ask() -> list[str]:
        config = services.settings(prefix).client_config(timeout_s=30)
        async with AsyncClient(config) as client:
            started = time.monotonic()
            results = await asyncio.gather(
                *(client.generate(f"after {i}", sampling=SamplingParams(max_tokens=4)) for i in range(20))
            )
            assert time.monotonic() - started < 20
            return [r.text for r in results]

    assert len(asyncio.run(ask())) == 20
    replies.wait_for({*answered, "wrong-model"}, timeout_s=30)
    replies.close()
    for rid, code in answered.items():
        got = replies.by_id.get(rid, [])
        assert len(got) == 1 and getattr(got[0], "code", None) == code, (rid, got)
    assert not set(dead_only) & replies.by_id.keys()
    (refused,) = replies.by_id["wrong-model"]
    assert getattr(refused, "code", None) == "invalid_request" and "gpt-4" in getattr(refused, "message", "")

    letters = [decode_dead_letter(v or b"") for v, _ in read_all(services.bootstrap, names.requests_dlq)]
    per_id = collections.Counter(letter.request_id for letter in letters)
    for rid in [*dead_only, *answered]:
        assert per_id[rid] == 1, (rid, per_id)
    assert per_id["wrong-model"] == 0
    huge = next(letter for letter in letters if letter.request_id == "huge")
    assert huge.truncated and huge.original_bytes == len(bodies["huge"]) and len(huge.original_sha256) == 64
    assert admission.alive() and worker.alive()
    assert "MaxRestartsExceeded" not in admission.tail(500) and "Traceback" not in worker.tail(500)
