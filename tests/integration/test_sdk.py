"""The client SDK on the real stack: sync client, sessions, close, backpressure, `kinfer chat`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable

import pytest
from redis import Redis

from kinfer.producers import AsyncClient, ChatMessage, Client, ClientClosed
from kinfer.schemas import InferenceResult, SamplingParams, TokenChunk
from tests.integration.conftest import Pipeline

ECHO_ALL = SamplingParams(max_tokens=2000)
"""The echo model answers with its whole prompt reversed: the test reads the prompt back."""


@pytest.fixture
def echo_pipeline(make_pipeline: Callable[[str], Pipeline], prefix: str) -> Pipeline:
    pipeline = make_pipeline(prefix)
    pipeline.start("admission", "admission")
    pipeline.start("worker", "worker", env={"KINFER_WORKER__MODEL": "echo"})
    pipeline.wait_serving()
    return pipeline


def test_sync_client_generate_stream_and_chat(echo_pipeline: Pipeline) -> None:
    config = echo_pipeline.services.settings(echo_pipeline.prefix).client_config(timeout_s=30)
    with Client(config) as client:
        assert client.generate("sync call").text == "llac cnys"
        items = list(client.stream("streamed sync"))
        assert isinstance(items[-1], InferenceResult)
        assert "".join(i.text for i in items if isinstance(i, TokenChunk)) == "cnys demaerts"
        answer = client.chat([ChatMessage("user", "hello")], sampling=ECHO_ALL)
        assert answer.text[::-1].endswith("<|user|>\nhello<|end|>\n<|assistant|>\n")


def test_sessions_prepend_history_from_redis(echo_pipeline: Pipeline) -> None:
    settings = echo_pipeline.services.settings(echo_pipeline.prefix)

    async def scenario() -> tuple[str, str]:
        async with AsyncClient(settings.client_config(timeout_s=30)) as client:
            first = await client.chat(
                [ChatMessage("user", "my name is Ada")], session_id="s-1", sampling=ECHO_ALL
            )
            second = await client.chat(
                [ChatMessage("user", "what is my name?")], session_id="s-1", sampling=ECHO_ALL
            )
            return first.text[::-1], second.text[::-1]

    first_prompt, second_prompt = asyncio.run(scenario())
    assert "my name is Ada" in first_prompt and "what is my name?" not in first_prompt
    assert second_prompt.index("my name is Ada") < second_prompt.index("what is my name?")
    assert (
        "<|assistant|>\n" + first_prompt[::-1] in second_prompt
    )  # the earlier answer is part of the context
    ttl = Redis.from_url(echo_pipeline.services.redis_url).ttl(f"{echo_pipeline.prefix}:session:s-1")
    assert 0 < ttl <= 3600


def test_close_fails_pending_calls_clearly(make_pipeline: Callable[[str], Pipeline], prefix: str) -> None:
    pipeline = make_pipeline(prefix)  # no stages at all: nothing will answer

    async def scenario() -> None:
        client = AsyncClient(pipeline.services.settings(prefix).client_config(timeout_s=60))
        await client.start()
        pending = asyncio.create_task(client.generate("never answered"))
        await asyncio.sleep(0.5)
        await client.close()
        with pytest.raises(ClientClosed, match="before an answer came"):
            await pending
        with pytest.raises(ClientClosed, match="closed"):
            await client.generate("after close")

    asyncio.run(scenario())


def test_backpressure_bounds_calls_in_flight(echo_pipeline: Pipeline) -> None:
    config = echo_pipeline.services.settings(echo_pipeline.prefix).client_config(
        timeout_s=60, max_in_flight=8
    )

    async def scenario() -> int:
        async with AsyncClient(config) as client:
            most = 0

            async def watch() -> None:
                nonlocal most
                while True:
                    most = max(most, len(client.router._pending))
                    await asyncio.sleep(0.001)

            watcher = asyncio.create_task(watch())
            results = await asyncio.gather(*(client.generate(f"bp {i}") for i in range(300)))
            watcher.cancel()
            assert [r.text for r in results] == [f"bp {i}"[::-1] for i in range(300)]
            return most

    assert 1 <= asyncio.run(scenario()) <= 8


def test_kinfer_chat_streams_and_keeps_context(echo_pipeline: Pipeline) -> None:
    env = {
        **os.environ,
        **echo_pipeline.services.env(echo_pipeline.prefix),
        "KINFER_ADMISSION__TIERS_FILE": str(echo_pipeline.tiers_file),
    }
    result = subprocess.run(
        [sys.executable, "-m", "kinfer.infra.cli", "chat", "--max-tokens", "2000", "--session", "term-1"],
        input="first line\nsecond line\n/exit\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # Echo answers with its prompt reversed: the first question shows up in both answers
    # only if the second turn's prompt held the first turn (the session's history).
    assert result.stdout.count("enil tsrif") == 2, result.stdout
    assert result.stdout.count("enil dnoces") == 1


def test_each_client_instance_leases_its_own_reply_partition(
    make_pipeline: Callable[[str], Pipeline], prefix: str
) -> None:
    pipeline = make_pipeline(prefix)  # 4 reply partitions
    config = pipeline.services.settings(prefix).client_config()
    redis = Redis.from_url(pipeline.services.redis_url)

    async def scenario() -> None:
        clients = [AsyncClient(config) for _ in range(5)]
        for client in clients:
            await client.start()
        leases = [client._lease for client in clients]
        exclusive = [lease.partition for lease in leases if lease is not None and lease.exclusive]
        assert sorted(exclusive) == [0, 1, 2, 3]  # four instances, four partitions of their own
        assert (
            sum(1 for lease in leases if lease is not None and not lease.exclusive) == 1
        )  # the fifth shares
        for client in clients:
            await client.close()

    asyncio.run(scenario())
    assert redis.keys(f"{prefix}:reply-lease:*") == []  # released on close
