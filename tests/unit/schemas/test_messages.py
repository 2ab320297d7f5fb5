from __future__ import annotations

import msgspec
import pytest

from kinfer.schemas import (
    SCHEMA_VERSION,
    ChatMessage,
    DeadLetter,
    ErrorCode,
    ErrorReply,
    InferenceRequest,
    InferenceResult,
    InvalidMessage,
    ReplyAddress,
    SamplingParams,
    TokenChunk,
    Usage,
    WorkerEvent,
    decode_reply,
    decode_request,
    encode,
    limits,
)
from kinfer.schemas.events import OutcomeStatus

ADDR = ReplyAddress("kinfer.replies", 3)


def request(**kw: object) -> InferenceRequest:
    fields: dict[str, object] = {"request_id": "r1", "tenant": "acme", "prompt": "hi", "reply_to": ADDR}
    fields.update(kw)
    return InferenceRequest(**fields)  # type: ignore[arg-type]


def test_request_round_trips() -> None:
    req = request(
        sampling=SamplingParams(max_tokens=5, temperature=0.7, seed=3, stop=("\n",)), session_id="s"
    )
    assert decode_request(encode(req)) == req


def test_replies_decode_to_their_type() -> None:
    result = InferenceResult(request_id="r1", text="x", finish_reason="stop", usage=Usage(2, 1), model="m")
    chunk = TokenChunk(request_id="r1", index=0, text="x")
    error = ErrorReply(request_id="r1", code=ErrorCode.RATE_LIMITED, message="slow down", retry_after_ms=250)
    for reply in (result, chunk, error):
        assert decode_reply(encode(reply)) == reply
    assert decode_reply(encode(error)).retriable  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"prompt": ""}, "needs a non-empty prompt or messages"),
        ({"messages": (ChatMessage("user", "hi"),)}, "not both"),
        ({"prompt": "", "messages": (ChatMessage("user", "x" * limits.MAX_PROMPT_BYTES),)}, "limit is"),
        ({"model": ""}, "model"),
        ({"model": "m" * 500}, "model"),
        ({"prompt": "x" * (limits.MAX_PROMPT_BYTES + 1)}, "limit is"),
        ({"request_id": ""}, "request_id"),
        ({"tenant": "t" * 500}, "tenant"),
    ],
)
def test_request_limits_hold_at_construction(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(InvalidMessage, match=needle) as info:
        request(**kwargs)
    assert info.value.code is ErrorCode.INVALID_REQUEST


@pytest.mark.parametrize(
    ("topic", "partition", "needle"),
    [
        ("r", -1, "partition"),
        ("r", 2**31, "partition"),
        ("", 0, "topic"),
        ("a b", 0, "topic"),
        ("..", 0, "topic"),
    ],
)
def test_reply_addresses_hold_at_construction(topic: str, partition: int, needle: str) -> None:
    with pytest.raises(InvalidMessage, match=needle):
        ReplyAddress(topic, partition)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": limits.MAX_NEW_TOKENS + 1}, "max_tokens"),
        ({"temperature": -1.0}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"stop": ("",)}, "stop"),
    ],
)
def test_sampling_limits_hold_at_construction(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(InvalidMessage, match=needle):
        SamplingParams(**kwargs)  # type: ignore[arg-type]


def test_limits_hold_when_decoding_too() -> None:
    raw = (
        b'{"request_id":"a","tenant":"t","prompt":"x",'
        b'"reply_to":{"topic":"r","partition":0},"sampling":{"max_tokens":0}}'
    )
    with pytest.raises(InvalidMessage, match="max_tokens"):
        decode_request(raw)


@pytest.mark.parametrize("raw", [b"", b"not json", b"[]", b'{"request_id": 5}', b"\xff\xfe"])
def test_malformed_bytes_are_invalid_message(raw: bytes) -> None:
    with pytest.raises(InvalidMessage, match="malformed request"):
        decode_request(raw)


def test_unknown_fields_of_this_version_are_refused() -> None:
    base = msgspec.json.decode(encode(request()))
    with pytest.raises(InvalidMessage, match=r"unknown field.*max_token"):
        decode_request(msgspec.json.encode({**base, "max_token": 5}))
    with pytest.raises(InvalidMessage, match=r"sampling\.temp"):
        decode_request(msgspec.json.encode({**base, "sampling": {"temp": 1}}))


def test_newer_version_with_added_optional_fields_is_accepted() -> None:
    base = msgspec.json.decode(encode(request()))
    newer = {**base, "schema_version": SCHEMA_VERSION + 1, "priority": "high", "sampling": {"min_p": 0.1}}
    decoded = decode_request(msgspec.json.encode(newer))
    assert decoded.request_id == "r1"
    assert decoded.schema_version == SCHEMA_VERSION + 1


def test_every_writer_states_its_version() -> None:
    """The rule above needs the writer's version on the wire, default or not."""
    messages: list[msgspec.Struct] = [
        request(),
        InferenceResult(request_id="r1", text="t", finish_reason="stop", usage=Usage(1, 1), model="m"),
        TokenChunk(request_id="r1", index=0, text="t"),
        ErrorReply(request_id="r1", code=ErrorCode.INTERNAL, message="m"),
        WorkerEvent(request_id="r1", tenant="t", region="us-west", model="m", status="ok"),
        DeadLetter(
            code=ErrorCode.INVALID_REQUEST,
            reason="r",
            source_topic="x",
            source_partition=0,
            source_offset=0,
            original=b"",
        ),
    ]
    for message in messages:
        assert msgspec.json.decode(encode(message))["schema_version"] == SCHEMA_VERSION, message


def test_outcome_statuses_are_ok_plus_every_error_code() -> None:
    assert set(OutcomeStatus.__args__) == {"ok"} | {c.value for c in ErrorCode}


def test_error_codes_carry_retriable() -> None:
    assert not ErrorCode.INVALID_REQUEST.retriable
    assert not ErrorCode.DEADLINE_EXCEEDED.retriable
    assert ErrorCode.RATE_LIMITED.retriable and ErrorCode.UNAVAILABLE.retriable


def test_worker_event_round_trips() -> None:
    event = WorkerEvent(request_id="r", tenant="t", region="us-west", model="m", status="ok", batch_size=3)
    assert msgspec.json.decode(encode(event), type=WorkerEvent) == event
