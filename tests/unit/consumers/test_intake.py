"""Intake without Kafka: records in, jobs, refusals and copies out, in order."""

from __future__ import annotations

from kinfer.consumers.dedupe import RequestDeduplicator
from kinfer.consumers.engine import load_runner
from kinfer.consumers.intake import Duplicate, Intake, Refusal
from kinfer.consumers.outbox import Job
from kinfer.consumers.reply_topics import ReplyTopics
from kinfer.schemas import ErrorCode, InferenceRequest, ReplyAddress, TopicNames, encode, headers
from tests.samples import ConsumedRecord


def request(rid: str, partition: int = 1, topic: str = "x.replies") -> bytes:
    return encode(
        InferenceRequest(request_id=rid, tenant="t", prompt="hi", reply_to=ReplyAddress(topic, partition))
    )


def intake(lookups: list[str] | None = None) -> Intake:
    def partitions(topic: str) -> int | None:
        (lookups if lookups is not None else []).append(topic)
        return 4 if topic == "x.replies" else None

    return Intake(load_runner("echo"), ReplyTopics(TopicNames("x"), partitions), RequestDeduplicator())


def test_runnable_records_become_jobs_and_copies_are_skipped() -> None:
    out = intake().take_in([ConsumedRecord(request("a"), 0), ConsumedRecord(request("a"), 1)], now_ms=5)  # type: ignore[list-item]
    assert isinstance(out[0], Job) and out[0].offset == 0 and out[0].consumed_ms == 5
    assert (
        isinstance(out[1], Duplicate) and out[1].in_flight and out[1].source == ("x.dispatch.us-west", 0, 1)
    )


def test_unanswerable_addresses_are_dead_lettered_without_an_answer() -> None:
    lookups: list[str] = []
    records = [
        ConsumedRecord(request("p9", partition=9), 0),
        ConsumedRecord(request("nt", topic="nope"), 1),
        ConsumedRecord(request("own", topic="x.events"), 2),
        ConsumedRecord(request("p8", partition=8), 3),
    ]
    out = intake(lookups).take_in(records, now_ms=0)  # type: ignore[arg-type]
    assert all(
        isinstance(o, Refusal) and o.decision.address is None and o.decision.dead_letter_reason for o in out
    )
    reasons = [o.decision.dead_letter_reason for o in out if isinstance(o, Refusal)]
    assert "4 partitions; 9 is not one" in (reasons[0] or "") and "does not exist" in (reasons[1] or "")
    assert "pipeline's own topic" in (reasons[2] or "")
    assert lookups == ["x.replies", "nope"]  # one lookup per topic: the counts are cached


def test_unreadable_records_are_refused_through_their_header_address() -> None:
    hdrs = {headers.REQUEST_ID: "bad", headers.REPLY_TOPIC: "x.replies", headers.REPLY_PARTITION: "2"}
    (out,) = intake().take_in([ConsumedRecord(b"[" * 100_000, 7, hdrs)], now_ms=0)  # type: ignore[list-item]
    assert isinstance(out, Refusal) and out.decision.address == ReplyAddress("x.replies", 2)
    assert out.decision.reply.code is ErrorCode.INVALID_REQUEST and out.decision.dead_letter_reason


def test_a_failure_inside_triage_costs_that_record_only() -> None:
    broken = intake()

    def explode(_prompt: str) -> int:
        raise ArithmeticError("boom")

    broken.runner.count_tokens = explode  # type: ignore[method-assign]
    (out,) = broken.take_in([ConsumedRecord(request("a"), 0)], now_ms=0)  # type: ignore[list-item]
    assert isinstance(out, Refusal) and out.decision.reply.code is ErrorCode.INTERNAL
    assert "ArithmeticError" in (out.decision.dead_letter_reason or "")


def test_jobs_carry_when_admission_had_them_and_a_bad_stamp_never_fails_one() -> None:
    stamped = ConsumedRecord(
        request("a"), 0, {headers.ADMITTED_MS: "1700000000123.250"}, produced_ms=1700000000125
    )
    forged = [
        ConsumedRecord(request(f"b{i}"), i + 1, {headers.ADMITTED_MS: bad})
        for i, bad in enumerate(["soon", "nan", "-5", "inf", ""])
    ]
    out = intake().take_in([stamped, *forged], now_ms=1700000000130)  # type: ignore[list-item]
    assert all(isinstance(o, Job) for o in out)
    first = out[0]
    assert isinstance(first, Job)
    assert first.admitted_ms == 1700000000123.25 and first.dispatched_ms == 1700000000125.0
    assert all(isinstance(o, Job) and o.admitted_ms == 0.0 and o.dispatched_ms == 0.0 for o in out[1:])
