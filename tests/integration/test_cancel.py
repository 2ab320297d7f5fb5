"""Cancel through the real pipeline: a streamed request stopped mid-decode gets one
``cancelled`` answer and its worker stops stepping; cancels that change nothing say so;
a forged cancel on a signed pipeline is refused; the gateway cancels for a caller that
hangs up (with the official ``openai`` client)."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable

import httpx
import pytest

from kinfer.infra.models import DEFAULT_MODEL
from kinfer.infra.stack.process import free_port
from kinfer.producers import AsyncClient, Cancelled
from kinfer.schemas import CancelAck, ErrorReply, SamplingParams, TokenChunk
from kinfer.schemas.codec import decode_reply_record
from tests.integration.conftest import Pipeline, kinfer, metric, read_all, start_gateway, until

TINY_EOS = 257
SMOLLM2_ENDS = (0, 2)
"""``<|endoftext|>`` and ``<|im_end|>``."""
LONG = SamplingParams(max_tokens=1000, logit_bias=dict.fromkeys(SMOLLM2_ENDS, -100.0))
"""SmolLM2 on llama.cpp (one thread, about 50 tokens/s here) with its ends of text banned:
without a cancel it decodes for 20 s, far longer than a cancel takes to arrive."""
TINY_LONG = SamplingParams(max_tokens=200, logit_bias={TINY_EOS: -100})
"""kinfer-tiny, its end of sequence banned: 200 tokens each."""
SMOLLM2 = ["--engine", "llama.cpp", "--quantize", "int8", "--threads", "1", "--model", DEFAULT_MODEL]


def _worker_with_metrics(pipeline: Pipeline, *args: str) -> int:
    port = free_port()
    pipeline.start("admission", "admission")
    pipeline.start("worker", "worker", *args, env={"KINFER_METRICS_PORT": str(port)})
    pipeline.wait_serving(timeout_s=180)
    return port


def _steps(port: int) -> float:
    return metric(port, "kinfer_worker_compute_seconds_count")


def _answers(pipeline: Pipeline, request_id: str) -> list[object]:
    records = read_all(pipeline.services.bootstrap, pipeline.names.replies)
    replies = [decode_reply_record(v or b"") for v, _ in records]
    return [r for r in replies if r.request_id == request_id and not isinstance(r, TokenChunk | CancelAck)]


def test_a_streamed_request_cancelled_mid_decode_gets_one_cancelled_answer(
    make_pipeline: Callable[[str], Pipeline], prefix: str
) -> None:
    pipeline = make_pipeline(prefix)
    port = _worker_with_metrics(pipeline, *SMOLLM2)
    config = pipeline.services.settings(prefix).client_config(timeout_s=60)

    before = _steps(port)  # the readiness check's own request stepped too

    async def scenario() -> tuple[list[TokenChunk], Cancelled, CancelAck, float, float]:
        async with AsyncClient(config) as client:
            chunks: list[TokenChunk] = []
            stream = client.stream("Once upon a time", sampling=LONG, request_id="stop-me")
            ack: CancelAck | None = None
            steps_at_ack = 0.0
            try:
                async for item in stream:
                    assert isinstance(item, TokenChunk), "finished before the cancel"
                    chunks.append(item)
                    if len(chunks) == 3:
                        ack = await client.cancel("stop-me")
                        steps_at_ack = _steps(port)
            except Cancelled as exc:
                assert ack is not None
                return chunks, exc, ack, steps_at_ack - before, _steps(port) - before
            raise AssertionError("the stream ended without an answer")

    chunks, cancelled, ack, steps_at_ack, steps_after = asyncio.run(scenario())
    assert ack.status == "cancelling"
    assert cancelled.code.value == "cancelled"
    assert cancelled.usage is not None
    made = cancelled.usage.completion_tokens
    assert 3 <= made < LONG.max_tokens
    assert cancelled.text.startswith("".join(c.text for c in chunks))
    # It stopped before its next step once the cancel reached it: one request ran, so the
    # worker's steps are its tokens (+1 for the step that saw the last pick), no more.
    assert steps_after <= made + 1, (steps_after, made)
    assert steps_after - steps_at_ack <= made  # and it did not go on after the answer
    assert metric(port, "kinfer_worker_cancelled_total", where="decoding") == 1
    assert metric(port, "kinfer_worker_cancel_saved_tokens_total", where="decoding") == LONG.max_tokens - made
    answers = _answers(pipeline, "stop-me")
    assert len(answers) == 1 and isinstance(answers[0], ErrorReply), answers


def test_cancels_that_change_nothing_say_so_once(
    make_pipeline: Callable[[str], Pipeline], prefix: str
) -> None:
    pipeline = make_pipeline(prefix)
    _worker_with_metrics(pipeline)
    config = pipeline.services.settings(prefix).client_config(timeout_s=60)

    async def scenario() -> dict[str, str]:
        async with AsyncClient(config) as client:
            done = await client.generate("hello", sampling=SamplingParams(max_tokens=4), request_id="done-1")
            assert done.request_id == "done-1"
            statuses = {"finished": (await client.cancel("done-1")).status}
            statuses["unknown"] = (await client.cancel("never-sent")).status
            statuses["foreign"] = (await client.cancel("done-1", tenant="someone-else")).status
            stream = client.stream("Once", sampling=LONG, request_id="twice")
            with pytest.raises(Cancelled):
                async for _ in stream:  # chunks already on their way still arrive
                    if "first" not in statuses:
                        statuses["first"] = (await client.cancel("twice")).status
                        statuses["second"] = (await client.cancel("twice")).status
            return statuses

    statuses = asyncio.run(scenario())
    assert statuses == {
        "finished": "finished",
        "unknown": "unknown",
        "foreign": "unknown",  # ids are per tenant: another tenant's cancel finds nothing
        "first": "cancelling",
        "second": "already_cancelled",
    }
    assert [type(a).__name__ for a in _answers(pipeline, "done-1")] == ["InferenceResult"]
    # The same from a shell: `kinfer cancel ID` says what the cancel did.
    done = kinfer("cancel", "done-1", env=pipeline.services.env(prefix))
    assert done.returncode == 0 and done.stdout.startswith("finished: "), done.stdout + done.stderr
    assert len(_answers(pipeline, "twice")) == 1


SLOW_TIER = """
[tiers.trickle]
requests_per_min = 12
request_burst = 1
tokens_per_min = 1000000
token_burst = 1000000
over_limit = "queue"

[tenants.default]
tier = "trickle"
"""


def test_a_request_cancelled_in_the_delay_queue_is_answered_there_with_nothing_made(
    make_pipeline: Callable[[str], Pipeline], prefix: str
) -> None:
    pipeline = make_pipeline(prefix)
    pipeline.tiers = SLOW_TIER  # one request per 5 s: the second one waits in the delay queue
    _worker_with_metrics(pipeline)
    config = pipeline.services.settings(prefix).client_config(timeout_s=60)

    async def scenario() -> tuple[str, Cancelled]:
        async with AsyncClient(config) as client:
            first = asyncio.create_task(client.generate("one", sampling=SamplingParams(max_tokens=4)))
            await first
            queued = asyncio.create_task(client.generate("two", sampling=TINY_LONG, request_id="queued-1"))
            await asyncio.sleep(0)  # produced before the cancel: one producer, one partition, in order
            ack = await client.cancel("queued-1")
            with pytest.raises(Cancelled) as info:
                await queued
            return ack.status, info.value

    status, cancelled = asyncio.run(scenario())
    assert status in ("cancelling", "unknown")  # "unknown" when it raced its request's mark
    assert "delay queue" in cancelled.message and cancelled.usage is not None
    assert (cancelled.usage.prompt_tokens, cancelled.usage.completion_tokens) == (0, 0)
    assert len(_answers(pipeline, "queued-1")) == 1


def test_a_cancel_storm_never_answers_twice_nor_loses_one(
    make_pipeline: Callable[[str], Pipeline], prefix: str
) -> None:
    pipeline = make_pipeline(prefix)
    _worker_with_metrics(pipeline)
    config = pipeline.services.settings(prefix).client_config(timeout_s=600)
    n = 60

    async def scenario() -> collections.Counter[str]:
        async with AsyncClient(config) as client:
            sampling = TINY_LONG
            calls = [
                asyncio.create_task(client.generate(f"storm {i}", sampling=sampling, request_id=f"storm{i}"))
                for i in range(n)
            ]
            acks = await asyncio.gather(*(client.cancel(f"storm{i}") for i in range(0, n, 2)))
            assert {a.status for a in acks} <= {"cancelling", "finished", "unknown"}
            outcomes: collections.Counter[str] = collections.Counter()
            for call in calls:
                try:
                    await call
                    outcomes["ok"] += 1
                except Cancelled:
                    outcomes["cancelled"] += 1
            assert client.router.stats.duplicate_answers == 0
            return outcomes

    outcomes = asyncio.run(scenario())
    assert sum(outcomes.values()) == n and outcomes["cancelled"] >= 1
    records = read_all(pipeline.services.bootstrap, pipeline.names.replies)
    replies = [decode_reply_record(v or b"") for v, _ in records]
    per_id = collections.Counter(
        r.request_id
        for r in replies
        if not isinstance(r, TokenChunk | CancelAck) and r.request_id.startswith("storm")
    )
    assert len(per_id) == n and set(per_id.values()) == {1}


def test_the_gateway_cancels_when_the_openai_client_hangs_up(
    make_pipeline: Callable[[str], Pipeline], prefix: str
) -> None:
    from openai import OpenAI

    pipeline = make_pipeline(prefix)
    port = _worker_with_metrics(pipeline, *SMOLLM2)
    base = start_gateway(pipeline, {"default": "sk-test"}, env={"KINFER_GATEWAY__TIMEOUT_S": "60"})
    no_end = {str(t): -100 for t in SMOLLM2_ENDS}
    # Streaming: the official client reads the first chunk and closes the connection.
    client = OpenAI(base_url=base, api_key="sk-test", max_retries=0)
    stream = client.chat.completions.create(
        model=DEFAULT_MODEL,
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=1000,
        stream=True,
        logit_bias=no_end,
    )
    next(iter(stream))
    stream.close()
    asyncio.run(
        until(lambda: metric(port, "kinfer_worker_cancelled_total", where="decoding") >= 1, 30, "a cancel")
    )
    # Non-streaming: the caller times out (goes away) long before the 1000 tokens.
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{base}/completions",
            headers={"Authorization": "Bearer sk-test"},
            json={"model": DEFAULT_MODEL, "prompt": "Once", "max_tokens": 1000, "logit_bias": no_end},
            timeout=httpx.Timeout(10, read=3.0),
        )

    def cancelled() -> float:  # decoding, or still waiting for a row when its caller went
        return sum(metric(port, "kinfer_worker_cancelled_total", where=w) for w in ("dispatched", "decoding"))

    asyncio.run(until(lambda: cancelled() >= 2, 30, "a second cancel"))
    saved = metric(port, "kinfer_worker_cancel_saved_tokens_total", where="decoding")
    assert saved > 1000  # most of both requests' tokens were never decoded
