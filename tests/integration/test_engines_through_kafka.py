"""The new engines behind the real pipeline: `kinfer worker --engine llama.cpp` in-process, and
`kinfer worker --engine openai` in front of a real llama-server (llama.cpp's own, built by
`make setup`, continuous batching over --parallel slots). Both started as a user starts them.
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kinfer.infra.models import DEFAULT_MODEL
from kinfer.infra.stack.llama_server import LlamaServer, LlamaServerConfig
from kinfer.infra.stack.process import free_port
from kinfer.producers import AsyncClient, Unavailable
from kinfer.schemas import ChatMessage, InferenceResult, SamplingParams, TokenChunk, decode_reply
from tests.conftest import smollm2_gguf
from tests.integration.conftest import (
    Pipeline,
    assert_answered_once,
    kill_mid_run,
    read_all,
    until,
    wait_for,
)

LLAMA = ["--engine", "llama.cpp", "--quantize", "int8", "--threads", "1"]
"""SmolLM2's Q8_0 GGUF, one thread a worker (two workers share this machine's cores)."""


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    state = tmp_path_factory.mktemp("llama-server")
    config = LlamaServerConfig(
        smollm2_gguf("Q8_0"),
        state,
        port=free_port(),
        parallel=8,
        context=8192,
        threads=2,
        alias=DEFAULT_MODEL,
    )
    server = LlamaServer(config)
    server.start()
    yield server
    server.stop()


def engine_args(engine: str, server: LlamaServer | None) -> list[str]:
    if engine == "llama.cpp":
        return [*LLAMA, "--model", DEFAULT_MODEL]
    assert server is not None
    return ["--engine", "openai", "--engine-url", server.config.url, "--model", DEFAULT_MODEL]


def serve(
    make_pipeline: Callable[[str], Pipeline], prefix: str, args: list[str], workers: int = 1
) -> Pipeline:
    pipeline = make_pipeline(prefix)
    pipeline.start("admission", "admission")
    for i in range(workers):
        pipeline.start(f"worker{i}", "worker", *args, "--max-wait-ms", "10")
    pipeline.wait_serving(timeout_s=180)
    return pipeline


@pytest.mark.parametrize("engine", ["llama.cpp", "openai"])
def test_chats_and_streams_are_answered_through_kafka(
    engine: str, make_pipeline: Callable[[str], Pipeline], prefix: str, request: pytest.FixtureRequest
) -> None:
    server = request.getfixturevalue("llama_server") if engine == "openai" else None
    pipeline = serve(make_pipeline, prefix, engine_args(engine, server))
    config = pipeline.services.settings(prefix).client_config(timeout_s=120)
    question = [ChatMessage("user", "What is Kafka? Answer in one sentence.")]

    async def scenario() -> None:
        async with AsyncClient(config) as client:
            answers = await asyncio.gather(
                *(client.generate(question, sampling=SamplingParams(max_tokens=16, seed=i)) for i in range(6))
            )
            assert all(a.text.startswith("Kafka") and a.usage.completion_tokens == 16 for a in answers), (
                answers
            )
            assert all(a.usage.prompt_tokens > 20 for a in answers)  # the template's system turn
            items = [item async for item in client.stream(question, sampling=SamplingParams(max_tokens=12))]
            *chunks, final = items
            assert isinstance(final, InferenceResult) and final.text.startswith("Kafka")
            assert (
                len(chunks) > 1 and "".join(c.text for c in chunks if isinstance(c, TokenChunk)) == final.text
            )
            two = await client.generate(
                "Kafka is", sampling=SamplingParams(max_tokens=4, n=2, temperature=0.5)
            )
            assert len(two.choices) == 1 and two.usage.completion_tokens == 8

    asyncio.run(scenario())


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["llama.cpp", "openai"])
def test_a_worker_sigkilled_with_500_in_flight_loses_and_duplicates_nothing(
    engine: str, make_pipeline: Callable[[str], Pipeline], prefix: str, request: pytest.FixtureRequest
) -> None:
    server = request.getfixturevalue("llama_server") if engine == "openai" else None
    n = 500
    pipeline = serve(make_pipeline, prefix, engine_args(engine, server), workers=2)
    config = pipeline.services.settings(prefix).client_config(timeout_s=300)
    kill_mid_run(config, n, "e", pipeline.stages[1].kill)
    assert_answered_once(pipeline.services.bootstrap, pipeline.names.replies, "e", n)


def test_an_engine_server_that_goes_away_pauses_the_worker_and_nothing_is_lost(
    make_pipeline: Callable[[str], Pipeline], prefix: str, tmp_path: Path
) -> None:
    """llama-server killed under load: what it was decoding is answered `unavailable`, the
    worker stops taking records and heartbeats drained with the reason; restarted, the
    requests sent meanwhile are answered. Every request gets exactly one answer."""
    config = LlamaServerConfig(
        smollm2_gguf("Q8_0"), tmp_path / "srv", port=free_port(), parallel=4, context=4096, threads=1
    )
    server = LlamaServer(config)
    server.start()
    try:
        pipeline = serve(make_pipeline, prefix, engine_args("openai", server))
        client_config = pipeline.services.settings(prefix).client_config(timeout_s=240)

        async def scenario() -> list[BaseException | InferenceResult]:
            async with AsyncClient(client_config) as client:
                sampling = SamplingParams(max_tokens=24)

                def send(rid: str) -> asyncio.Task[InferenceResult]:
                    return asyncio.create_task(client.generate(rid, sampling=sampling, request_id=rid))

                first = [send(f"away-a{i}") for i in range(8)]
                await asyncio.sleep(0.5)
                server.process.stop(timeout_s=0)  # SIGTERM, then SIGKILL at once: the engine dies
                await until(
                    lambda: "engine server away" in heartbeat_reason(pipeline), 30, "a drained heartbeat"
                )
                later = [send(f"away-b{i}") for i in range(5)]
                await asyncio.sleep(2)
                assert not any(t.done() for t in later), "answered while the engine was away"
                await asyncio.to_thread(server.start)
                answered = await asyncio.gather(*later)
                assert all(a.text for a in answered)
                early = await asyncio.gather(*first, return_exceptions=True)
                # Those the engine was decoding when it died: answered, or `unavailable`.
                assert all(isinstance(a, InferenceResult | Unavailable) for a in early), early
                return [*early, *answered]

        assert len(asyncio.run(scenario())) == 13
        replies = [
            decode_reply(v or b"") for v, _ in read_all(pipeline.services.bootstrap, pipeline.names.replies)
        ]
        counts = collections.Counter(r.request_id for r in replies if r.request_id.startswith("away-"))
        assert len(counts) == 13 and set(counts.values()) == {1}, counts
    finally:
        server.stop()


def heartbeat_reason(pipeline: Pipeline) -> str:
    from kinfer.consumers.pool.registry import PoolRegistry

    registry = PoolRegistry(pipeline.services.redis_url, pipeline.prefix, "us-west")
    return " ".join(b.drained_reason for b in registry.heartbeats().values())


def test_the_engine_server_decodes_no_further_once_a_request_is_removed(llama_server: LlamaServer) -> None:
    """Closing a request's stream (cancel, deadline, partition gone) stops the engine's work on
    it: its slot is idle again long before 2,000 tokens could have been decoded."""
    from kinfer.consumers.engine import GenerationInput, load_runner
    from kinfer.consumers.engine.remote import RemoteRunner

    runner = load_runner(DEFAULT_MODEL, engine="openai", engine_url=llama_server.config.url)
    assert isinstance(runner, RemoteRunner)
    running = runner.batch()
    running.join([("long", GenerationInput("Count to ten thousand:", SamplingParams(max_tokens=2000)))])
    seen: list[str] = []
    while not seen:
        running.step(lambda _k, delta: seen.append(delta.text))
    assert busy_slots(llama_server) == 1
    assert running.remove(lambda _key: False) == ["long"]
    started = time.monotonic()
    wait_for(lambda: busy_slots(llama_server) == 0, 10, "the slot to go idle")
    assert time.monotonic() - started < 10
    runner.close()


def busy_slots(server: LlamaServer) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.config.port}/slots", timeout=5) as answer:
        return sum(1 for slot in json.load(answer) if slot.get("is_processing"))
