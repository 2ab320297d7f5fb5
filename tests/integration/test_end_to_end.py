"""200 requests through client -> admission (Faust) -> worker (torch) -> reply,
with malformed records interleaved on the ingress topic."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable

import msgspec
from confluent_kafka import Producer

from kinfer.consumers.engine import GenerationInput, load_runner
from kinfer.producers import AsyncClient
from kinfer.schemas import ErrorCode, ErrorReply, SamplingParams, decode_dead_letter, decode_reply, headers
from tests.integration.conftest import Pipeline, read_all

N = 200
SAMPLING = SamplingParams(max_tokens=8)


def malformed_records(
    reply_topic: str, partition: int
) -> list[tuple[bytes, list[tuple[str, bytes]], str | None]]:
    """(value, headers, request id the sender can be answered under or None)."""
    addr = [(headers.REPLY_TOPIC, reply_topic.encode()), (headers.REPLY_PARTITION, str(partition).encode())]
    return [
        (b"{not json", [(headers.REQUEST_ID, b"bad-json"), *addr], "bad-json"),
        (b'{"request_id":"bad-type","tenant":5}', [(headers.REQUEST_ID, b"bad-type"), *addr], "bad-type"),
        (
            msgspec.json.encode(
                {
                    "request_id": "bad-field",
                    "tenant": "t",
                    "prompt": "x",
                    "max_token": 3,
                    "reply_to": {"topic": reply_topic, "partition": partition},
                }
            ),
            [(headers.REQUEST_ID, b"bad-field")],
            "bad-field",
        ),
        (b"\xff\x00binary", [], None),  # no address at all: DLQ only
    ]


def test_two_hundred_requests_and_malformed_records(
    make_pipeline: Callable[[str], Pipeline], prefix: str
) -> None:
    pipeline = make_pipeline(prefix)
    pipeline.start("admission", "admission")
    pipeline.start("worker", "worker", "--max-wait-ms", "20")
    pipeline.wait_serving()
    prompts = [f"request number {i}: {'abc' * (i % 7)}" for i in range(N)]

    async def scenario() -> tuple[list[str], dict[str, ErrorReply], int]:
        settings = pipeline.services.settings(prefix)
        async with AsyncClient(settings.client_config(timeout_s=120, reply_partition=1)) as client:
            tasks = [
                asyncio.create_task(client.generate(p, sampling=SAMPLING, request_id=f"ok-{i}"))
                for i, p in enumerate(prompts)
            ]
            raw = Producer({"bootstrap.servers": pipeline.services.bootstrap})
            bad = malformed_records(pipeline.names.replies, 1)
            waiting = {rid: client.router.expect(rid) for _, _, rid in bad if rid}
            for value, hdrs, _ in bad:
                raw.produce(pipeline.names.requests, value=value, headers=hdrs)
                await asyncio.sleep(0.05)
            raw.flush(10)
            results = await asyncio.gather(*tasks)
            errors = {rid: await asyncio.wait_for(fut, 60) for rid, fut in waiting.items()}
            return [r.text for r in results], errors, client.router.stats.duplicate_answers  # type: ignore[misc]

    try:
        texts, errors, _ = asyncio.run(scenario())
    except BaseException:
        for stage in pipeline.stages:
            print(f"--- {stage.name}:\n{stage.tail(60)}")
        raise

    runner = load_runner("kinfer-tiny", device="cpu")
    expected = [runner.generate([GenerationInput(p, SAMPLING)])[0].text for p in prompts]
    assert texts == expected

    assert set(errors) == {"bad-json", "bad-type", "bad-field"}
    for rid, reply in errors.items():
        assert isinstance(reply, ErrorReply) and reply.code is ErrorCode.INVALID_REQUEST, (rid, reply)
    assert "unknown field(s) max_token" in errors["bad-field"].message

    # Exactly one terminal answer per request id on the reply topic (the probe's aside).
    replies = [
        decode_reply(v or b"") for v, _ in read_all(pipeline.services.bootstrap, pipeline.names.replies)
    ]
    per_id = collections.Counter(r.request_id for r in replies)
    ours = {f"ok-{i}" for i in range(N)} | set(errors)
    assert {rid: n for rid, n in per_id.items() if rid in ours and n != 1} == {}
    assert ours <= set(per_id)

    letters = [
        decode_dead_letter(v or b"")
        for v, _ in read_all(pipeline.services.bootstrap, pipeline.names.requests_dlq)
    ]
    assert len(letters) == 4
    assert {letter.original for letter in letters} == {
        value for value, _, _ in malformed_records(pipeline.names.replies, 1)
    }
    assert all(letter.reason and letter.source_topic == pipeline.names.requests for letter in letters)
