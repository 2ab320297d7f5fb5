"""Linked clusters without Kafka: a request routed here by a peer's admission is answered,
and its outcome reported, on return topics that MirrorMaker mirrors to that peer alone."""

from __future__ import annotations

from kinfer.consumers.dedupe import RequestDeduplicator
from kinfer.consumers.engine import load_runner
from kinfer.consumers.intake import Intake, Refusal
from kinfer.consumers.outbox import Job, Outbox
from kinfer.consumers.reply_topics import ReplyTopics
from kinfer.consumers.return_path import ReturnPath
from kinfer.schemas import ErrorCode, InferenceRequest, ReplyAddress, TopicNames, encode
from tests.samples import ConsumedRecord

NAMES = TopicNames("x")
HERE = ReturnPath(NAMES, "eu-central")
FROM_US = "us-west.x.dispatch.eu-central"


def request(rid: str, topic: str = "x.replies") -> bytes:
    return encode(InferenceRequest(request_id=rid, tenant="t", prompt="hi", reply_to=ReplyAddress(topic, 2)))


def intake(present: set[str]) -> Intake:
    topics = ReplyTopics(NAMES, lambda topic: 4 if topic in present else None)
    return Intake(load_runner("echo"), topics, RequestDeduplicator(), HERE)


def test_origin_is_read_from_the_topic_a_record_came_through() -> None:
    assert HERE.origin("x.dispatch.eu-central") is None
    assert HERE.origin(FROM_US) == "us-west"
    assert HERE.address(ReplyAddress("x.replies", 3), FROM_US) == ReplyAddress("x.to-us-west.x.replies", 3)
    assert HERE.address(ReplyAddress("x.replies", 3), "x.dispatch.eu-central") == ReplyAddress("x.replies", 3)
    assert (
        HERE.events(FROM_US) == "x.to-us-west.x.events" and HERE.events("x.dispatch.eu-central") == "x.events"
    )


def test_a_peers_request_is_answered_on_its_return_topic_with_its_outcome() -> None:
    out = intake({"x.to-us-west.x.replies"}).take_in(
        [ConsumedRecord(request("a"), 0, source_topic=FROM_US)], now_ms=5
    )  # type: ignore[list-item]
    job = out[0]
    assert isinstance(job, Job) and job.request.reply_to == ReplyAddress("x.to-us-west.x.replies", 2)
    outbox = Outbox(NAMES, "eu-central", "w1", "echo")
    outbox.error(job, ErrorCode.INTERNAL, "boom", now_ms=6)
    assert [r.topic for r in outbox.records] == ["x.to-us-west.x.replies", "x.to-us-west.x.events"]


def test_a_missing_return_topic_is_a_dead_letter_naming_it_and_owned_topics_stay_refused() -> None:
    records = [
        ConsumedRecord(request("m"), 0, source_topic=FROM_US),
        ConsumedRecord(request("e", topic="x.events"), 1, source_topic=FROM_US),
        ConsumedRecord(request("r", topic="x.to-us-west.x.replies"), 2),
    ]
    missing, owned, forged = intake(set()).take_in(records, now_ms=5)  # type: ignore[arg-type]
    assert isinstance(missing, Refusal) and missing.decision.address is None
    assert "x.to-us-west.x.replies does not exist" in (missing.decision.dead_letter_reason or "")
    for refused in (owned, forged):
        assert isinstance(refused, Refusal) and "pipeline's own topic" in refused.decision.reply.message
