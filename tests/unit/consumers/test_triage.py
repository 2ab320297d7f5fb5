from collections.abc import Sequence

from kinfer.consumers.engine.chat_template import render_plain
from kinfer.consumers.engine.runner import bias_problem
from kinfer.consumers.triage import Runnable, triage
from kinfer.schemas import (
    ChatMessage,
    ErrorCode,
    InferenceRequest,
    ReplyAddress,
    SamplingParams,
    encode,
    headers,
)
from kinfer.schemas.refusals import Refused

ADDR = ReplyAddress("t.replies", 2)


def decide(value: bytes | None, hdrs: dict[str, str] | None = None, now: int = 1_000) -> Runnable | Refused:
    return triage(
        value,
        hdrs or {},
        now_ms=now,
        count_tokens=lambda p: len(p) + 1,
        max_context=100,
        render_chat=template,
        served_model="m1",
        sampling_problem=lambda s: bias_problem(s, 300, "m"),
    )


def template(messages: Sequence[ChatMessage]) -> str:
    return render_plain(messages)


def req(**kw: object) -> bytes:
    fields: dict[str, object] = {"request_id": "r", "tenant": "t", "prompt": "hello", "reply_to": ADDR}
    fields.update(kw)
    return encode(InferenceRequest(**fields))  # type: ignore[arg-type]


def test_valid_request_is_runnable_with_its_token_cost() -> None:
    out = decide(req(sampling=SamplingParams(max_tokens=10)))
    assert isinstance(out, Runnable)
    assert out.tokens == 6 + 10


def test_n_choices_cost_n_rows_of_the_batch_budget() -> None:
    out = decide(req(sampling=SamplingParams(max_tokens=10, n=3)))
    assert isinstance(out, Runnable) and out.tokens == 3 * (6 + 10)


def test_a_logit_bias_outside_the_vocabulary_is_refused_naming_the_ids() -> None:
    out = decide(req(sampling=SamplingParams(logit_bias={5: 1.0, 300: -100.0, 4000: 2.0})))
    assert isinstance(out, Refused) and out.reply.code is ErrorCode.INVALID_REQUEST
    assert "[300, 4000]" in out.reply.message and "vocabulary of 300" in out.reply.message
    assert isinstance(decide(req(sampling=SamplingParams(logit_bias={299: 1.0}))), Runnable)


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


def test_a_chat_is_rendered_with_the_models_template_and_counted_as_rendered() -> None:
    chat = (ChatMessage("user", "hi"),)
    out = decide(req(prompt="", messages=chat, sampling=SamplingParams(max_tokens=10)))
    assert isinstance(out, Runnable)
    assert out.prompt == "<|user|>\nhi<|end|>\n<|assistant|>\n"
    assert out.tokens == len(out.prompt) + 1 + 10


def test_a_request_for_another_model_is_refused_naming_the_served_one() -> None:
    out = decide(req(model="gpt-9"))
    assert isinstance(out, Refused) and out.reply.code is ErrorCode.INVALID_REQUEST
    assert "'gpt-9'" in out.reply.message and "'m1'" in out.reply.message
    assert isinstance(decide(req(model="m1")), Runnable)
    assert isinstance(decide(req()), Runnable)  # no model named: whatever the region serves
