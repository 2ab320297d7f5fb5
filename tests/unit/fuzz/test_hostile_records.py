"""Property-based fuzzing of everything a hostile producer reaches: the decoders, the
header parsers and both stages' first decisions. Whatever the bytes, each returns an
answer or a refusal with a reason; nothing raises anything else, and no refusal is
left with neither a reply address nor a dead letter."""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kinfer.consumers.engine.chat_template import render_plain
from kinfer.consumers.engine.runner import bias_problem
from kinfer.consumers.engine.sampling import logprobs_of, make_generator, pick_batch
from kinfer.consumers.triage import Runnable, triage
from kinfer.schemas import (
    DeadLetter,
    ErrorCode,
    InferenceRequest,
    InvalidMessage,
    ReplyAddress,
    SamplingParams,
    decode_dead_letter,
    decode_request,
    encode,
    headers,
    limits,
)
from kinfer.schemas.codec import decode_cancel, decode_reply_record, reply_target
from kinfer.schemas.dead_letters import dead_letter
from kinfer.schemas.refusals import Refused
from kinfer.streams.admission import AdmissionLimits, Admit, decide

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VALID = json.loads(
    encode(
        InferenceRequest(
            request_id="r1",
            tenant="t",
            prompt="hello",
            reply_to=ReplyAddress("k.replies", 3),
            sampling=SamplingParams(max_tokens=8, temperature=0.7, seed=5, stop=("x",)),
            user="u",
            session_id="s",
        )
    )
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=12,
)
HEADER_KEYS = st.sampled_from(
    [headers.REQUEST_ID, headers.REPLY_TOPIC, headers.REPLY_PARTITION, headers.TENANT, headers.DEADLINE_MS]
)
HEADER_DICTS = st.dictionaries(HEADER_KEYS, st.text(max_size=30), max_size=6)


def mutate(record: dict[str, Any], path: list[str], value: Any) -> bytes:
    out = json.loads(json.dumps(record))
    node = out
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(node.get(key), dict) else node
    node[path[-1]] = value
    return json.dumps(out).encode()


PATHS = st.sampled_from(
    [
        ["request_id"],
        ["tenant"],
        ["prompt"],
        ["model"],
        ["user"],
        ["session_id"],
        ["deadline_ms"],
        ["reply_to"],
        ["reply_to", "topic"],
        ["reply_to", "partition"],
        ["reply_to", "extra"],
        ["sampling", "temperature"],
        ["sampling", "seed"],
        ["sampling", "top_p"],
        ["sampling", "max_tokens"],
        ["sampling", "stop"],
        ["messages"],
        ["stream"],
        ["schema_version"],
        ["unknown_field"],
        ["sampling", "frequency_penalty"],
        ["sampling", "presence_penalty"],
        ["sampling", "logit_bias"],
        ["sampling", "n"],
        ["sampling", "logprobs"],
        ["sampling", "top_logprobs"],
    ]
)


MUTATED = PATHS.flatmap(lambda path: JSON_VALUES.map(lambda value: mutate(VALID, path, value)))


def addressable_or_dead_lettered(refusal: Refused) -> bool:
    return refusal.address is not None or refusal.dead_letter_reason is not None


def check_address(address: ReplyAddress | None) -> None:
    if address is not None:
        assert 0 <= address.partition <= limits.MAX_PARTITION and address.topic


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes_are_refused_as_invalid_never_raised(data: bytes) -> None:
    with contextlib.suppress(InvalidMessage):
        decode_request(data)


@FUZZ
@given(PATHS, JSON_VALUES)
def test_any_field_holding_any_value_is_decoded_or_refused(path: list[str], value: Any) -> None:
    data = mutate(VALID, path, value)
    try:
        request = decode_request(data)
    except InvalidMessage:
        return
    check_address(request.reply_to)
    s = request.sampling
    assert s.temperature == 0 or limits.MIN_TEMPERATURE <= s.temperature <= 5
    assert s.seed is None or limits.MIN_SEED <= s.seed <= limits.MAX_SEED
    for name in ("user", "session_id", "model"):
        v = getattr(request, name)
        assert v is None or 1 <= len(v) <= limits.MAX_ID_CHARS


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 100_000,
        b'{"a":' * 50_000,
        b'{"request_id": "r", "tenant": "t", "prompt": "\xff\xfe", '
        b'"reply_to": {"topic": "k.replies", "partition": 0}}',
        b'{"request_id": "r", "reply_to": {"topic": "k.replies", "partition": 99999999999}}',
        json.dumps({**VALID, "sampling": {"temperature": 1e-300}}).encode(),
        json.dumps({**VALID, "sampling": {"temperature": 0.5, "seed": 2**64}}).encode(),
        json.dumps({**VALID, "reply_to": {"topic": "k.replies", "partition": 2**31}}).encode(),
        json.dumps({**VALID, "reply_to": {"topic": "k.replies", "partition": 0, "x": 1}}).encode(),
        json.dumps({**VALID, "user": "u" * 10_000}).encode(),
        json.dumps({**VALID, "reply_to": {"topic": "bad topic!", "partition": 0}}).encode(),
    ],
    ids=[
        "deep-array",
        "deep-object",
        "bad-utf8",
        "huge-partition",
        "tiny-temperature",
        "seed-2^64",
        "partition-2^31",
        "reply-to-extra",
        "long-user",
        "bad-topic",
    ],
)
def test_known_poison_pills_are_invalid_request(data: bytes) -> None:
    with pytest.raises(InvalidMessage) as info:
        decode_request(data)
    assert info.value.code is ErrorCode.INVALID_REQUEST
    out = decide(data, {}, now_ms=0, limits=AdmissionLimits(limits.MAX_PROMPT_BYTES, 4096))
    assert isinstance(out, Refused) and addressable_or_dead_lettered(out)
    check_address(out.address)


@FUZZ
@given(HEADER_DICTS)
def test_header_addresses_are_valid_or_absent(values: dict[str, str]) -> None:
    found = headers.reply_address(values)
    if found is not None:
        check_address(ReplyAddress(*found))


@FUZZ
@given(st.binary(max_size=512) | MUTATED, HEADER_DICTS)
def test_admission_and_workers_decide_every_record(data: bytes, values: dict[str, str]) -> None:
    _, address = reply_target(data, values)
    check_address(address)
    out = decide(data, values, now_ms=0, limits=AdmissionLimits(limits.MAX_PROMPT_BYTES, 4096))
    assert isinstance(out, Admit) or addressable_or_dead_lettered(out)
    decision = triage(
        data,
        values,
        now_ms=0,
        count_tokens=lambda p: len(p) + 1,
        max_context=100_000,
        render_chat=render_plain,
        served_model="m",
        sampling_problem=lambda s: bias_problem(s, 300, "m"),
    )
    assert isinstance(decision, Runnable) or addressable_or_dead_lettered(decision)


@FUZZ
@given(
    temperature=st.floats(allow_nan=True, allow_infinity=True),
    top_p=st.floats(allow_nan=True, allow_infinity=True),
    seed=st.none() | st.integers(),
)
def test_sampling_that_validates_never_makes_the_sampler_fail(
    temperature: float, top_p: float, seed: int | None
) -> None:
    try:
        params = SamplingParams(temperature=temperature, top_p=top_p, seed=seed)
    except InvalidMessage:
        return
    logits = torch.randn(2, 300) * 40
    gens = [make_generator(params, torch.device("cpu")) for _ in range(2)]
    picks = pick_batch(logits, [params, params], gens)
    assert all(0 <= p < 300 for p in picks)


@FUZZ
@given(
    penalties=st.tuples(st.floats(allow_nan=True, allow_infinity=True), st.floats(allow_nan=True)),
    bias=st.dictionaries(st.integers(-5, 400), st.floats(allow_nan=True, allow_infinity=True), max_size=5),
    n=st.integers(-2, 12),
    top=st.integers(-2, 25),
    tokens=st.lists(st.integers(0, 299), max_size=30),
)
def test_openai_knobs_that_validate_never_make_the_sampler_fail(
    penalties: tuple[float, float], bias: dict[int, float], n: int, top: int, tokens: list[int]
) -> None:
    """Penalties, biases (ids past the logits included: a worker refuses them first), choices
    and top log-probabilities: refused as invalid, or a token and finite log-probabilities."""
    try:
        params = SamplingParams(
            temperature=0.9,
            seed=1,
            frequency_penalty=penalties[0],
            presence_penalty=penalties[1],
            logit_bias=bias,
            n=n,
            logprobs=top >= 0,
            top_logprobs=top,
        )
    except InvalidMessage:
        return
    logits = torch.randn(2, 300) * 40
    gens = [make_generator(params, torch.device("cpu"), choice) for choice in range(2)]
    picks = pick_batch(logits, [params, params], gens, [tokens, []])
    assert all(0 <= p < 300 for p in picks)
    for scored in logprobs_of(logits, [params, params], picks):
        assert scored is not None and math.isfinite(scored[0]) and len(scored[1]) == top


@FUZZ
@given(st.integers(min_value=0, max_value=3 * limits.MAX_MESSAGE_BYTES), st.text(max_size=5000))
def test_a_dead_letter_always_fits_the_broker(size: int, reason: str) -> None:
    original = b"\xab" * size
    letter = dead_letter(
        original, reason=reason, code=ErrorCode.INVALID_REQUEST, source=("k.requests", 0, 1), request_id="r"
    )
    encoded = encode(letter)
    assert len(encoded) <= limits.MAX_MESSAGE_BYTES - limits.RECORD_OVERHEAD_BYTES
    back = decode_dead_letter(encoded)
    assert back.original_bytes == size and back.truncated == (len(back.original) < size)
    assert original.startswith(back.original) and len(back.original_sha256) == 64
    assert isinstance(back, DeadLetter)


CANCEL_FIELDS = st.dictionaries(
    st.sampled_from(["request_id", "tenant", "reply_to", "created_ms", "deadline_ms", "schema_version", "x"]),
    JSON_VALUES,
)


@FUZZ
@given(st.one_of(st.binary(max_size=512), CANCEL_FIELDS.map(lambda d: json.dumps(d).encode())))
def test_a_hostile_cancel_is_decoded_or_refused_and_reply_records_never_raise(data: bytes) -> None:
    """A cancel record's value (admission decodes it) and anything on a reply partition (the
    client decodes it): a typed message or InvalidMessage, never another exception."""
    with contextlib.suppress(InvalidMessage):
        cancel = decode_cancel(data)
        assert cancel.request_id and cancel.tenant
        check_address(cancel.reply_to)
    with contextlib.suppress(InvalidMessage):
        decode_reply_record(data)
