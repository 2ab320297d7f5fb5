"""Decoding constrained to a JSON Schema: whatever the weights would say, a finished answer
parses and validates; the constraint holds batched, streamed, per choice, and a schema the
grammar compiler refuses is refused before any compute."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kinfer.consumers.engine import GenerationInput, load_runner
from kinfer.consumers.engine.echo import EchoRunner
from kinfer.consumers.engine.runner import TextDelta
from kinfer.consumers.engine.torch_runner import TorchRunner
from kinfer.schemas import ChatMessage, SamplingParams

PERSON: dict[str, Any] = {
    "type": "object",
    "properties": {
        "mood": {"enum": ["happy", "sad", "calm"]},
        "ok": {"type": "boolean"},
        "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 3},
    },
    "required": ["mood", "ok", "tags"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def tiny() -> TorchRunner:
    r = load_runner("kinfer-tiny", device="cpu")
    assert isinstance(r, TorchRunner)
    return r


def constrained(schema: dict[str, Any], **knobs: Any) -> SamplingParams:
    return SamplingParams(json_schema=schema, **{"max_tokens": 200, **knobs})


def test_random_weights_still_answer_valid_json(tiny: TorchRunner) -> None:
    """kinfer-tiny's weights know nothing of JSON: the grammar alone makes the answer valid."""
    for prompt in ("a", "tell me about yourself", "{"):
        (out,) = tiny.generate([GenerationInput(prompt, constrained(PERSON))])
        assert out.finish_reason == "stop", out
        jsonschema.validate(json.loads(out.text), PERSON)


def test_constrained_rows_batch_with_free_ones_and_choices_each_follow_it(tiny: TorchRunner) -> None:
    items = [
        GenerationInput("free text", SamplingParams(max_tokens=12)),
        GenerationInput("json please", constrained(PERSON, temperature=1.0, seed=4, n=3)),
        GenerationInput("any object", constrained({"type": "object"}, max_tokens=40)),
    ]
    alone = [tiny.generate([item])[0] for item in items]
    batched = tiny.generate(items)
    assert batched == alone
    free, person, anything = batched
    assert free.text == tiny.generate([items[0]])[0].text
    for choice in (person, *person.more):
        jsonschema.validate(json.loads(choice.text), PERSON)
    assert anything.text.startswith("{")


def test_streamed_constrained_text_is_the_final_json(tiny: TorchRunner) -> None:
    deltas: list[TextDelta] = []
    (out,) = tiny.generate(
        [GenerationInput("stream it", constrained(PERSON))], lambda _row, d: deltas.append(d)
    )
    assert "".join(d.text for d in deltas) == out.text
    jsonschema.validate(json.loads(out.text), PERSON)


def test_a_schema_the_compiler_refuses_is_a_sampling_problem(tiny: TorchRunner) -> None:
    assert tiny.sampling_problem(constrained(PERSON)) is None
    problem = tiny.sampling_problem(
        constrained({"type": "object", "properties": {"x": {"type": "frobnicate"}}})
    )
    assert problem is not None and problem.startswith("json_schema cannot be compiled")
    assert (
        EchoRunner().sampling_problem(constrained(PERSON))
        == "model 'echo' cannot constrain its answer to a JSON Schema"
    )


def test_smollm2_answers_a_chat_in_the_schema(smollm2: TorchRunner) -> None:
    prompt = smollm2.render_chat([ChatMessage("user", "Describe your mood as JSON.")])
    (out,) = smollm2.generate([GenerationInput(prompt, constrained(PERSON, max_tokens=60))])
    assert out.finish_reason == "stop"
    jsonschema.validate(json.loads(out.text), PERSON)


SCHEMA_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3),
    max_leaves=10,
)
SCHEMAS = st.dictionaries(
    st.sampled_from(
        ["type", "properties", "items", "enum", "required", "anyOf", "$ref", "minimum", "pattern"]
    ),
    SCHEMA_VALUES,
    max_size=4,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SCHEMAS)
def test_any_schema_is_refused_with_a_reason_or_constrains_without_failing(schema: dict[str, Any]) -> None:
    tiny = load_runner("kinfer-tiny", device="cpu")
    params = SamplingParams(max_tokens=16, json_schema=schema)
    problem = tiny.sampling_problem(params)
    if problem is not None:
        assert problem.startswith("json_schema cannot be compiled")
        return
    (out,) = tiny.generate([GenerationInput("x", params)])
    assert out.completion_tokens <= 16
