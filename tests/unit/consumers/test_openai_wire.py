"""The worker's side of OpenAI's wire to an engine server, without a server: the body each
request becomes, the event stream folded back, and the engine's refusals mapped to kinfer's codes.
(The same runner against a real llama-server: tests/integration/test_engines_through_kafka.py.)"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kinfer.consumers.engine.openai_wire import StreamState, request_body
from kinfer.consumers.engine.remote import RemoteConfig, _refusal, connect
from kinfer.consumers.engine.runner import EngineLoadFailed, GenerationInput
from kinfer.infra.stack.process import free_port
from kinfer.schemas import ChatMessage, ErrorCode, SamplingParams

CHAT = (ChatMessage("user", "hi"),)


def data(event: dict[str, Any]) -> str:
    return "data: " + json.dumps(event)


def test_a_chat_goes_to_chat_completions_with_every_knob() -> None:
    sampling = SamplingParams(
        max_tokens=9, temperature=0.5, top_p=0.9, seed=3, stop=("x",), frequency_penalty=0.5,
        presence_penalty=-0.5, logit_bias={7: -100.0}, n=2, logprobs=True, top_logprobs=2,
        json_schema={"type": "object"},
    )  # fmt: skip
    path, body = request_body(GenerationInput("rendered", sampling, CHAT), "m")
    assert path == "chat/completions"
    assert body["messages"] == [{"role": "user", "content": "hi"}] and "prompt" not in body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert (body["max_tokens"], body["temperature"], body["top_p"], body["seed"]) == (9, 0.5, 0.9, 3)
    assert body["stop"] == ["x"] and body["logit_bias"] == {"7": -100.0} and body["n"] == 2
    assert (body["logprobs"], body["top_logprobs"]) == (True, 2)
    assert body["response_format"]["json_schema"]["schema"] == {"type": "object"}


def test_a_prompt_goes_to_completions_and_defaults_are_not_sent() -> None:
    path, body = request_body(GenerationInput("Once", SamplingParams(max_tokens=4)), "m")
    assert path == "completions" and body["prompt"] == "Once"
    assert not {"top_p", "seed", "stop", "n", "logit_bias", "logprobs"} & set(body)


def test_a_chat_stream_folds_into_text_usage_and_finish() -> None:
    state = StreamState(GenerationInput("", SamplingParams(max_tokens=5), CHAT), prompt_estimate=3)
    deltas = []
    for line in [
        ": keep-alive",
        data({"choices": [{"index": 0, "delta": {"role": "assistant"}}]}),
        data({"choices": [{"index": 0, "delta": {"content": "Hel"}}]}),
        "",
        data({"choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "length"}]}),
        data({"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 5}}),
        "data: [DONE]",
    ]:
        deltas += state.feed(line)
    assert [d.text for d in deltas] == ["Hel", "lo"] and state.done
    out = state.output()
    assert (out.text, out.finish_reason, out.prompt_tokens, out.completion_tokens) == (
        "Hello",
        "length",
        11,
        5,
    )


def test_completions_choices_and_logprobs_arrive_per_choice() -> None:
    state = StreamState(GenerationInput("p", SamplingParams(n=2, logprobs=True, top_logprobs=1)), 1)
    lp = {"tokens": ["a"], "token_logprobs": [-0.5], "top_logprobs": [{"a": -0.5}]}
    state.feed(data({"choices": [{"index": 1, "text": "a", "logprobs": lp}]}))
    state.feed(data({"choices": [{"index": 0, "text": "b", "finish_reason": "stop"}]}))
    state.feed(data({"choices": [{"index": 1, "text": "", "finish_reason": "stop"}]}))
    state.feed("data: [DONE]")
    out = state.output()
    assert out.text == "b" and out.more[0].text == "a"
    assert out.more[0].logprobs is not None and out.more[0].logprobs[0].top[0].logprob == -0.5


@pytest.mark.parametrize(
    "line",
    [
        "data: not json",
        "data: [1, 2]",
        data({"error": {"message": "out of memory"}}),
        data({"choices": [{"index": 5, "text": "x"}]}),
        data({"choices": [{"index": 0, "text": "x", "logprobs": {"content": [{"token": "x"}]}}]}),
    ],
)
def test_a_stream_that_is_not_openais_shape_is_an_error(line: str) -> None:
    state = StreamState(GenerationInput("p", SamplingParams(logprobs=True)), 1)
    with pytest.raises((ValueError, KeyError, TypeError)):
        state.feed(line)


def test_a_stream_cut_before_its_end_is_an_error() -> None:
    state = StreamState(GenerationInput("p", SamplingParams()), 1)
    state.feed(data({"choices": [{"index": 0, "text": "half"}]}))
    with pytest.raises(ValueError, match="without a finish_reason"):
        state.output()


@given(st.text(max_size=200))
def test_no_line_makes_the_stream_raise_anything_but_a_shape_error(line: str) -> None:
    state = StreamState(GenerationInput("p", SamplingParams()), 1)
    with contextlib.suppress(ValueError, KeyError, TypeError):  # answered `unavailable`, naming the shape
        state.feed(line)


def test_refusals_keep_their_owner() -> None:
    bad = _refusal(httpx.Response(400, json={"error": {"message": "n_ctx exceeded"}}))
    assert bad.code == ErrorCode.INVALID_REQUEST and "n_ctx exceeded" in bad.message
    down = _refusal(httpx.Response(503, text="<html>loading</html>"))
    assert down.code == ErrorCode.UNAVAILABLE and "503" in down.message and "loading" in down.message


def test_an_engine_url_that_does_not_answer_fails_at_start() -> None:
    with pytest.raises(EngineLoadFailed, match="does not answer"):
        connect(RemoteConfig(f"http://127.0.0.1:{free_port()}/v1", connect_timeout_s=1), "m")
