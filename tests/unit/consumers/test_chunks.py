"""Stream chunks: numbered per request from 0, the first carries the rate-limit status,
a forgotten request starts again from 0, non-streaming requests publish nothing."""

from __future__ import annotations

import dataclasses
from typing import Any

from kinfer.consumers.chunks import ChunkPublisher
from kinfer.consumers.engine.runner import TextDelta
from kinfer.consumers.outbox import Job
from kinfer.schemas import InferenceRequest, ReplyAddress, TokenChunk, decode_reply, headers
from kinfer.schemas.signing import REPLY_SIGNATURE, reply_key, reply_signed
from tests.samples import rate_limit_status


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def produce(self, topic: str, **kw: Any) -> None:
        self.sent.append({"topic": topic, **kw})

    def poll(self, _timeout: float) -> int:
        return 0


def job(stream: bool) -> Job:
    request = InferenceRequest(
        request_id="r1", tenant="t", prompt="p", reply_to=ReplyAddress("x.replies", 5), stream=stream
    )
    return Job(request, 10, ("x.dispatch.us-west", 0), 0, 0, "p", rate_limit_status())


def chunks(producer: FakeProducer) -> list[TokenChunk]:
    out = [decode_reply(sent["value"]) for sent in producer.sent]
    assert all(isinstance(c, TokenChunk) for c in out)
    return out  # type: ignore[return-value]


def test_chunks_are_numbered_and_only_the_first_carries_the_limits() -> None:
    producer = FakeProducer()
    publisher = ChunkPublisher(lambda: producer)  # type: ignore[arg-type,return-value]
    for text in ("a", "b", "c"):
        publisher.publish(job(stream=True), TextDelta(text))
    sent = chunks(producer)
    assert [(c.index, c.text) for c in sent] == [(0, "a"), (1, "b"), (2, "c")]
    assert sent[0].rate_limit == rate_limit_status() and sent[1].rate_limit is None
    assert {s["partition"] for s in producer.sent} == {5} and publisher.numbered("r1") == 3


def test_a_request_forgotten_mid_stream_is_numbered_from_zero_when_run_again() -> None:
    producer = FakeProducer()
    publisher = ChunkPublisher(lambda: producer)  # type: ignore[arg-type,return-value]
    publisher.publish(job(stream=True), TextDelta("a"))
    publisher.forget("r1")  # dropped on a rebalance, then re-run here
    publisher.publish(job(stream=True), TextDelta("a"))
    assert [c.index for c in chunks(producer)] == [0, 0]


def test_a_request_that_does_not_stream_publishes_nothing() -> None:
    producer = FakeProducer()
    ChunkPublisher(lambda: producer).publish(job(stream=False), TextDelta("a"))  # type: ignore[arg-type,return-value]
    assert producer.sent == []


def test_chunks_are_signed_with_the_requests_reply_key() -> None:
    producer = FakeProducer()
    publisher = ChunkPublisher(lambda: producer)  # type: ignore[arg-type,return-value]
    key = reply_key("tenant-key", "r1")
    publisher.publish(dataclasses.replace(job(stream=True), reply_key=key), TextDelta("a"))
    (sent,) = producer.sent
    assert reply_signed(key, sent["value"], headers.decode_headers(sent["headers"])[REPLY_SIGNATURE])
