from consumers.triage import Refused, Runnable, triage
from schemas import ErrorCode, InferenceRequest, ReplyAddress, SamplingParams, encode, headers

ADDR = ReplyAddress("t.replies", 2)


def decide(value: bytes | None, hdrs: dict[str, str] | None = None, now: int = 1_000) -> Runnable | Refused:
    return triage(value, hdrs or {}, now_ms=now, count_tokens=lambda p: len(p) + 1, max_context=100)


def req(**kw: object) -> bytes:
    fields: dict[str, object] = {"request_id": "r", "tenant": "t", "prompt": "hello", "reply_to": ADDR}
    fields.update(kw)
    return encode(InferenceRequest(**fields))  # type: ignore[arg-type]


def test_valid_request_is_runnable_with_its_token_cost() -> None:
    out = decide(req(sampling=SamplingParams(max_tokens=10)))
    assert isinstance(out, Runnable)
    assert out.tokens == 6 + 10


def test_expired_deadline_is_answered_without_compute() -> None:
    out = decide(req(deadline_ms=900), now=1_000)
    assert isinstance(out, Refused)
    assert out.reply.code is ErrorCode.DEADLINE_EXCEEDED
    assert out.address == ADDR and out.dead_letter_reason is None


def test_over_context_is_invalid_request() -> None:
    out = decide(req(prompt="x" * 95, sampling=SamplingParams(max_tokens=10)))
    assert isinstance(out, Refused)
    assert out.reply.code is ErrorCode.INVALID_REQUEST
    assert "context of 100" in out.reply.message


def test_unreadable_record_answers_through_headers_and_goes_to_dlq() -> None:
    hdrs = {headers.REQUEST_ID: "r9", headers.REPLY_TOPIC: "t.replies", headers.REPLY_PARTITION: "2"}
    out = decide(b"{garbage", hdrs)
    assert isinstance(out, Refused)
    assert out.reply.request_id == "r9"
    assert out.address == ADDR
    assert out.dead_letter_reason and "malformed" in out.dead_letter_reason


def test_unreadable_record_without_headers_has_no_address() -> None:
    out = decide(None)
    assert isinstance(out, Refused) and out.address is None and out.dead_letter_reason
