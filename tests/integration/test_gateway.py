"""The OpenAI-compatible gateway, with the official `openai` client and raw HTTP for each error."""

from __future__ import annotations

import math
from collections.abc import Callable

import httpx
import openai
import pytest

from tests.integration.conftest import Pipeline, start_gateway

KEYS = {"default": "sk-default", "small": "sk-small", "us-only": "sk-us", "apac-only": "sk-apac"}
TIERS = """
[tenants.default]
tier = "enterprise"
residency = "eu"
[tiers.tiny]
requests_per_min = 6
request_burst = 1
tokens_per_min = 1000000
token_burst = 1000000
over_limit = "reject"
[tenants.small]
tier = "tiny"
residency = "eu"
[tenants.us-only]
tier = "enterprise"
residency = "us"
[tenants.apac-only]
tier = "enterprise"
residency = "apac"
"""
REGIONS = '{"eu-central": 1, "ap-southeast": 1}'


@pytest.fixture
def gateway(make_pipeline: Callable[[str], Pipeline], prefix: str) -> str:
    """Admission + an echo worker in eu-central only (ap-southeast has none) + the gateway."""
    pipeline = make_pipeline(prefix)
    pipeline.tiers = TIERS  # replaces the suite's default table
    env = {"KINFER_REGION_WEIGHTS": REGIONS, "KINFER_REGION": "eu-central"}
    pipeline.start("admission", "admission", env=env)
    pipeline.start("worker", "worker", env={**env, "KINFER_WORKER__MODEL": "echo"})
    pipeline.wait_serving()
    return start_gateway(pipeline, KEYS, env)


def seconds(duration: str) -> float:
    """OpenAI's reset durations (``250ms``, ``9.5s``, ``1m30s``) in seconds."""
    if duration.endswith("ms"):
        return int(duration[:-2]) / 1000
    minutes, _, rest = duration.removesuffix("s").rpartition("m")
    return int(minutes or 0) * 60 + float(rest)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_openai_client_chat_completions_and_models(gateway: str) -> None:
    client = openai.OpenAI(base_url=gateway, api_key="sk-default", max_retries=0)
    assert [m.id for m in client.models.list().data] == ["echo"]

    chat = client.chat.completions.create(
        model="echo",
        messages=[{"role": "user", "content": "hello gateway"}],
        max_tokens=40,
        temperature=0,
    )
    text = chat.choices[0].message.content
    assert chat.object == "chat.completion" and text and chat.choices[0].message.role == "assistant"
    assert (
        chat.usage is not None
        and chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens
    )

    raw_stream = client.chat.completions.with_raw_response.create(
        model="echo",
        messages=[{"role": "user", "content": "hello gateway"}],
        max_tokens=40,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    # A stream's headers go out with its first chunk, which carries the limits too.
    assert raw_stream.headers["x-ratelimit-limit-requests"] == "10000"
    assert int(raw_stream.headers["x-ratelimit-remaining-tokens"]) < 8_000_000
    stream = raw_stream.parse()
    deltas, finish, usage = [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            deltas.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert "".join(deltas) == text and finish in ("stop", "length") and usage is not None

    raw = client.completions.with_raw_response.create(
        model="echo", prompt="abcdef", max_tokens=3, temperature=0
    )
    completion = raw.parse()
    assert completion.choices[0].text == "fed" and completion.choices[0].finish_reason == "length"
    # The suite's tenant is enterprise: 10k requests and 4M tokens a minute, bursts of twice that.
    assert raw.headers["x-ratelimit-limit-requests"] == "10000"
    assert raw.headers["x-ratelimit-limit-tokens"] == "4000000"
    assert 0 < 8_000_000 - int(raw.headers["x-ratelimit-remaining-tokens"]) < 1_000


def test_error_statuses_and_bodies(gateway: str) -> None:
    chat = {"model": "echo", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}

    def post(key: str | None, body: dict[str, object], path: str = "/chat/completions") -> httpx.Response:
        return httpx.post(gateway + path, json=body, headers=auth(key) if key else {}, timeout=30)

    health = httpx.get(gateway.removesuffix("/v1") + "/healthz", timeout=10)  # probes carry no key
    assert health.status_code == 200 and health.json() == {"status": "ok"}

    for key in (None, "sk-wrong"):
        r = post(key, chat)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"

    r = post("sk-default", {**chat, "max_token": 5})
    assert r.status_code == 400 and "max_token" in r.json()["error"]["message"]
    r = post("sk-default", {**chat, "messages": []})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = post("sk-default", {**chat, "model": "gpt-17"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    for hostile in ({"temperature": 1e-300}, {"seed": 2**64}, {"user": "u" * 500}):
        r = post("sk-default", {**chat, **hostile})  # once a 500 for everyone batched with it
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request", (hostile, r.text)

    ok = post("sk-small", chat)
    assert ok.status_code == 200  # the tier's burst of one: 6 requests/min, one at a time
    assert ok.headers["x-ratelimit-limit-requests"] == "6"
    assert ok.headers["x-ratelimit-limit-tokens"] == "1000000"
    assert ok.headers["x-ratelimit-remaining-requests"] == "0"
    assert 0 < 1_000_000 - int(ok.headers["x-ratelimit-remaining-tokens"]) < 200  # prompt + max_tokens
    assert ok.headers["x-ratelimit-reset-requests"] == "10s"  # one request back at 6/min
    r = post("sk-small", chat)
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(r.headers["retry-after"]) <= 10
    assert (
        r.headers["x-ratelimit-limit-requests"] == "6" and r.headers["x-ratelimit-remaining-requests"] == "0"
    )
    reset_s = float(r.headers["x-ratelimit-reset-requests"].removesuffix("s"))
    assert 0 < reset_s <= 10 and int(r.headers["retry-after"]) == math.ceil(reset_s)

    r = post("sk-us", chat)  # pinned to a region this deployment does not serve
    assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable" and "retry-after" in r.headers

    r = post("sk-apac", chat)  # admitted to ap-southeast, where no worker runs
    assert r.status_code == 504 and r.json()["error"]["code"] == "deadline_exceeded"

    r = post("sk-small", {**chat, "stream": True})  # errors before the stream starts are plain HTTP errors
    assert r.status_code == 429

    text = httpx.get(gateway.removesuffix("/v1") + "/metrics/", timeout=10).text
    assert 'kinfer_gateway_requests_total{endpoint="/v1/chat/completions",status="429"}' in text
    assert 'kinfer_gateway_requests_total{endpoint="/v1/chat/completions",status="401"} 2.0' in text
