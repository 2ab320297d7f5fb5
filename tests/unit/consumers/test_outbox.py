"""What the outbox makes of a finished request: the reply, the outcome, the cache entry."""

from __future__ import annotations

from kinfer.consumers.engine.runner import GenerationOutput
from kinfer.consumers.outbox import Job, Outbox, result_of
from kinfer.schemas import (
    ErrorCode,
    InferenceRequest,
    InferenceResult,
    ReplyAddress,
    Timings,
    TopicNames,
    decode_reply,
    headers,
)
from kinfer.schemas.signing import REPLY_SIGNATURE, reply_key, reply_signed
from tests.samples import rate_limit_status

STATUS = rate_limit_status(remaining_requests=42)


def test_the_reply_carries_admissions_status_and_the_cache_entry_does_not() -> None:
    request = InferenceRequest(request_id="r1", tenant="t", prompt="p", reply_to=ReplyAddress("x.replies", 3))
    job = Job(request, 10, ("x.dispatch.us-west", 0), 7, 100, "p", STATUS, admitted_ms=90.5, dispatched_ms=95)
    outbox = Outbox(TopicNames("x"), "us-west", "w1", "kinfer-tiny")
    result = result_of(
        job,
        GenerationOutput("q", "stop", 1, 1),
        model="kinfer-tiny",
        worker_id="w1",
        queue_ms=1.0,
        compute_ms=2.0,
        started_ms=103,
    )
    outbox.result(job, result, outbox.outcome(request, "ok", 0))

    (reply,) = [r for r in outbox.records if r.topic == "x.replies"]
    assert reply.partition == 3
    answer = decode_reply(reply.value)
    assert isinstance(answer, InferenceResult) and answer.rate_limit == STATUS
    assert answer.timings == Timings(
        admitted_ms=90.5, dispatched_ms=95.0, consumed_ms=100.0, started_ms=103.0, finished_ms=105.0
    )
    (cached,) = outbox.cacheable
    assert cached[1].rate_limit is None and cached[1].timings is None and cached[1].text == "q"
    assert outbox.answered == [(("x.dispatch.us-west", 0), 7)]


def test_every_answer_is_signed_with_the_reply_key_admission_gave() -> None:
    request = InferenceRequest(request_id="r1", tenant="t", prompt="p", reply_to=ReplyAddress("x.replies", 3))
    key = reply_key("tenant-key", "r1")
    job = Job(request, 10, ("x.dispatch.us-west", 0), 7, 100, "p", reply_key=key)
    outbox = Outbox(TopicNames("x"), "us-west", "w1", "kinfer-tiny")
    outbox.error(job, ErrorCode.INTERNAL, "boom", 0)
    outbox.reply(request.reply_to, "r1", b"{}", None)  # a job without a key: unsigned
    signed, unsigned = [r for r in outbox.records if r.topic == "x.replies"]
    assert reply_signed(key, signed.value, headers.decode_headers(signed.headers)[REPLY_SIGNATURE])
    assert REPLY_SIGNATURE not in dict(unsigned.headers)
    (event,) = [r for r in outbox.records if r.topic == "x.events"]
    assert REPLY_SIGNATURE not in dict(event.headers)
