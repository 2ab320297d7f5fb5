"""Clients nobody here wrote, against a running pipeline: the official `openai` package (sync,
async, streaming, raw responses), LangChain's ChatOpenAI and LlamaIndex's OpenAILike, each
sending the OpenAI request shape in full. A failure of one of them is a bug in kinfer until
shown otherwise.

The worker serves kinfer-tiny: one token per byte (token id = the byte), so a ``logit_bias``
or a penalty has an effect the test can name.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import httpx
import openai
import pytest
from pydantic import BaseModel

from tests.conftest import Services
from tests.docs_examples import example, run_python
from tests.integration.conftest import new_pipeline, start_gateway

KEY = "sk-clients"
MODEL = "kinfer-tiny"
Z = str(ord("z"))
"""kinfer-tiny's token id of the byte ``z``."""


@pytest.fixture(scope="module")
def gateway(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Admission, one kinfer-tiny worker and the gateway, shared by this module's tests."""
    logs: Path = tmp_path_factory.mktemp("openai-clients")
    pipeline = new_pipeline(services, f"t{uuid.uuid4().hex[:10]}", logs)
    try:
        pipeline.start("admission", "admission")
        pipeline.start("worker", "worker", "--max-wait-ms", "10")
        pipeline.wait_serving()
        yield start_gateway(pipeline, {"default": KEY}, {"KINFER_GATEWAY__TIMEOUT_S": "30"})
    finally:
        pipeline.stop()


@pytest.fixture
def client(gateway: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway, api_key=KEY, max_retries=0)


def test_content_parts_developer_role_and_names_are_one_chat(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "first line\nsecond line"},
        ],
        max_tokens=12,
        temperature=0,
    )
    parts = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "developer", "content": [{"type": "text", "text": "be brief"}]},
            {
                "role": "user",
                "name": "ada",
                "content": [{"type": "text", "text": "first line"}, {"type": "text", "text": "second line"}],
            },
        ],
        max_completion_tokens=12,
        temperature=0,
    )
    assert parts.choices[0].message.content == plain.choices[0].message.content
    assert parts.usage is not None and parts.usage.completion_tokens <= 12


def test_every_sampling_knob_is_applied(client: openai.OpenAI) -> None:
    def chat(**knobs: object) -> str:
        out = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "say something"}], max_tokens=16, **knobs
        )
        return out.choices[0].message.content or ""

    greedy = chat(temperature=0)
    assert chat(temperature=0, logit_bias={Z: 100}) == "z" * 16
    assert chat(temperature=0, frequency_penalty=2.0) != greedy
    assert chat(temperature=0, presence_penalty=2.0) != greedy
    seeded = chat(temperature=1.0, seed=42)
    assert chat(temperature=1.0, seed=42) == seeded
    stopped = chat(temperature=0, stop=[greedy[3:5]])
    assert stopped == greedy[: greedy.find(greedy[3:5])]

    many = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "say something"}],
        max_tokens=8,
        n=3,
        temperature=1,
        seed=7,
    )
    assert [c.index for c in many.choices] == [0, 1, 2]
    assert len({c.message.content for c in many.choices}) > 1
    assert many.usage is not None
    assert many.usage.completion_tokens == sum(len((c.message.content or "").encode()) for c in many.choices)


def test_logprobs_come_back_in_openais_shape_streaming_included(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "log me"}]
    out = client.chat.completions.create(
        model=MODEL,
        messages=messages,
        max_tokens=10,
        temperature=0,
        logprobs=True,
        top_logprobs=3,  # type: ignore[arg-type]
    )
    choice = out.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content is not None
    tokens = choice.logprobs.content
    assert "".join(t.token for t in tokens) == choice.message.content
    for t in tokens:
        assert t.logprob <= 0 and len(t.top_logprobs) == 3 and t.top_logprobs[0].token == t.token
        assert t.bytes == list(t.token.encode())

    stream = client.chat.completions.create(
        model=MODEL,
        messages=messages,  # type: ignore[arg-type]
        max_tokens=10,
        temperature=0,
        logprobs=True,
        top_logprobs=3,
        stream=True,
    )
    streamed = [
        t
        for chunk in stream
        for c in chunk.choices
        if c.logprobs and c.logprobs.content
        for t in c.logprobs.content
    ]
    assert [(t.token, round(t.logprob, 4)) for t in streamed] == [
        (t.token, round(t.logprob, 4)) for t in tokens
    ]

    legacy = client.completions.create(model=MODEL, prompt="log me", max_tokens=6, temperature=0, logprobs=2)
    lp = legacy.choices[0].logprobs
    assert lp is not None and lp.tokens is not None and "".join(lp.tokens) == legacy.choices[0].text
    assert lp.top_logprobs is not None and all(len(top) <= 2 for top in lp.top_logprobs)
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(len(lp.tokens))]
    echoed = client.completions.create(model=MODEL, prompt="log me", max_tokens=6, temperature=0, echo=True)
    assert echoed.choices[0].text == "log me" + legacy.choices[0].text


def test_n_choices_stream_with_their_index(client: openai.OpenAI) -> None:
    ask: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "two of them"}],
        "max_tokens": 8,
        "temperature": 1.0,
        "seed": 3,
        "n": 2,
    }
    stream = client.chat.completions.create(**ask, stream=True, stream_options={"include_usage": True})
    texts, finishes, usage = {0: "", 1: ""}, {}, None
    for chunk in stream:
        usage = chunk.usage or usage
        for c in chunk.choices:
            texts[c.index] += c.delta.content or ""
            if c.finish_reason:
                finishes[c.index] = c.finish_reason
    whole = client.chat.completions.create(**ask)
    assert texts == {c.index: c.message.content for c in whole.choices}
    assert set(finishes) == {0, 1} and usage is not None and usage.completion_tokens > 0


def test_what_cannot_be_honoured_is_refused_naming_the_parameter(gateway: str) -> None:
    base = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}

    def post(**extra: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {KEY}"}
        return httpx.post(f"{gateway}/chat/completions", json={**base, **extra}, headers=headers, timeout=30)

    assert post(response_format={"type": "text"}).status_code == 200
    assert (
        post(tool_choice="none", parallel_tool_calls=False, store=False, metadata={"a": "b"}).status_code
        == 200
    )
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    refused = {
        "response_format.json_schema": {"response_format": {"type": "json_schema"}},
        "tools": {"tools": [tool]},
        "tool_choice": {"tool_choice": "required"},
        "messages[0].content[0]": {
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]
        },
        "messages[0]": {"messages": [{"role": "tool", "content": "42", "tool_call_id": "c1"}]},
        "stop": {"stop": ["a", "b", "c", "d", "e"]},
        "logit_bias": {"logit_bias": {"z": 1}},
        "top_logprobs": {"top_logprobs": 2},
    }
    for param, extra in refused.items():
        r = post(**extra)
        error = r.json()["error"]
        assert r.status_code == 400 and error["param"] == param, (param, r.text)
        assert error["type"] == "invalid_request_error" and error["message"]
    for param, extra in {"n": {"n": 9}, "top_logprobs": {"logprobs": True, "top_logprobs": 21}}.items():
        r = post(**extra)
        assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
    r = post(logit_bias={"300": 5})  # past kinfer-tiny's 259 tokens: the worker knows its vocabulary
    assert r.status_code == 400 and "vocabulary" in r.json()["error"]["message"]


class Mood(BaseModel):
    mood: Literal["happy", "sad", "calm"]
    ok: bool


def test_response_format_constrains_the_answer_to_json(client: openai.OpenAI) -> None:
    """kinfer-tiny's weights know no JSON: what parses here, the grammar made parse."""
    messages: Any = [{"role": "user", "content": "how are you?"}]
    anything = client.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=60, response_format={"type": "json_object"}
    )
    choice = anything.choices[0]
    if choice.finish_reason == "stop":  # an object may be longer than 60 tokens: cut, as OpenAI's
        assert isinstance(json.loads(choice.message.content or ""), dict)
    else:
        assert (choice.message.content or "").startswith("{")

    parsed = client.chat.completions.parse(
        model=MODEL, messages=messages, max_tokens=60, response_format=Mood
    )
    assert isinstance(parsed.choices[0].message.parsed, Mood)

    schema = {
        "type": "object",
        "properties": {"n": {"enum": [1, 2, 3]}},
        "required": ["n"],
        "additionalProperties": False,  # else the random weights may add keys past max_tokens
    }
    many = client.chat.completions.create(
        model=MODEL,
        messages=messages,
        max_tokens=30,
        n=3,
        temperature=1.0,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "n", "schema": schema, "strict": True},
        },
    )
    assert all(json.loads(c.message.content or "")["n"] in (1, 2, 3) for c in many.choices)

    with pytest.raises(openai.BadRequestError, match="json_schema cannot be compiled"):
        bad = {"type": "object", "properties": {"n": {"type": "frobnicate"}}}
        client.chat.completions.create(
            model=MODEL,
            messages=messages,
            response_format={"type": "json_schema", "json_schema": {"name": "bad", "schema": bad}},
        )


def test_async_client_and_raw_response_headers(gateway: str) -> None:
    async def run() -> None:
        client = openai.AsyncOpenAI(base_url=gateway, api_key=KEY, max_retries=0)
        prompts = [f"async {i}" for i in range(6)]
        outs = await asyncio.gather(
            *(
                client.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": p}], max_tokens=6, temperature=0
                )
                for p in prompts
            )
        )
        assert all(o.choices[0].message.content for o in outs)
        raw = await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "raw"}], max_tokens=4, temperature=0
        )
        assert raw.status_code == 200 and raw.headers["x-ratelimit-limit-requests"]
        assert raw.parse().choices[0].finish_reason in ("stop", "length")
        await client.close()

    asyncio.run(run())


def test_langchain_chat_openai_invoke_stream_and_batch(gateway: str) -> None:
    from langchain_core.messages import HumanMessage, SystemMessage
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(base_url=gateway, api_key=KEY, model=MODEL, temperature=0, max_tokens=12, max_retries=0)
    messages = [SystemMessage("be brief"), HumanMessage("hello from langchain")]
    answer = llm.invoke(messages)
    assert isinstance(answer.content, str) and answer.content
    assert answer.usage_metadata is not None and answer.usage_metadata["output_tokens"] > 0
    assert "".join(str(chunk.content) for chunk in llm.stream(messages)) == answer.content
    batch = llm.batch([f"question number {i}" for i in range(8)])
    assert len(batch) == 8 and all(isinstance(b.content, str) and b.content for b in batch)
    biased = ChatOpenAI(
        base_url=gateway, api_key=KEY, model=MODEL, temperature=0, max_tokens=5, logit_bias={int(Z): 100}
    )
    assert biased.invoke("anything").content == "zzzzz"
    roomy = ChatOpenAI(base_url=gateway, api_key=KEY, model=MODEL, max_tokens=60, max_retries=0)
    structured = roomy.with_structured_output(Mood, method="json_schema").invoke("how are you?")
    assert isinstance(structured, Mood)


def test_llamaindex_openai_like_complete_chat_and_stream(gateway: str) -> None:
    from llama_index.core.llms import ChatMessage
    from llama_index.llms.openai_like import OpenAILike

    def llm(is_chat_model: bool) -> OpenAILike:
        return OpenAILike(
            model=MODEL,
            api_base=gateway,
            api_key=KEY,
            is_chat_model=is_chat_model,
            context_window=1024,
            max_tokens=12,
            temperature=0,
            max_retries=0,
        )

    completer = llm(is_chat_model=False)
    completed = completer.complete("hello from llamaindex")
    assert completed.text
    assert (
        "".join(r.delta or "" for r in completer.stream_complete("hello from llamaindex")) == completed.text
    )
    chatter = llm(is_chat_model=True)
    messages = [ChatMessage(role="system", content="be brief"), ChatMessage(role="user", content="hi there")]
    reply = chatter.chat(messages)
    assert reply.message.content
    assert "".join(r.delta or "" for r in chatter.stream_chat(messages)) == reply.message.content


@pytest.mark.parametrize("name", ["gateway-openai", "gateway-langchain", "gateway-llamaindex"])
def test_the_gateway_guides_examples_run_as_written(gateway: str, name: str) -> None:
    served = {"http://127.0.0.1:8000/v1": gateway, "sk-acme-123": KEY, "smollm2-135m-instruct": MODEL}
    # Sampled answers of a random-weights model (maybe empty): what is checked is that the
    # example runs as written against a live gateway; run_python fails on any error it raises.
    run_python(example("docs/guides/openai-gateway.md", name), served)
