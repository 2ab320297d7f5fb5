"""A hung Redis (SIGSTOP: connections stay open, nothing answers) costs every client one
bounded timeout per call, never a wait until the kernel gives up on the socket: each stage's
own clients, built with ``schemas.redis_bounds``."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from kinfer.infra.stack.process import free_port
from kinfer.infra.stack.redis import RedisConfig, RedisServer
from kinfer.schemas.redis_bounds import CLIENT_S, DECISION_S, WORKER_S, bounded

HUNG_FOR_S = 10.0
"""Far past every bound, far below the kernel's minutes: a call back by then was bounded."""


@pytest.fixture
def hung(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A Redis of this test's own (its URL and pid), resumed and stopped at the end."""
    server = RedisServer(RedisConfig(state_dir=tmp_path / "redis", port=free_port()))
    server.start()
    pid = server.process.pid()
    assert pid is not None
    try:
        yield server.config.url, pid
    finally:
        os.kill(pid, signal.SIGCONT)
        server.stop()


@pytest.mark.parametrize("timeout_s", [WORKER_S, DECISION_S])
def test_a_call_to_a_hung_redis_fails_as_a_timeout(hung: tuple[str, int], timeout_s: float) -> None:
    url, pid = hung
    client = redis.Redis.from_url(url, **bounded(timeout_s))
    assert client.ping()  # a pooled connection, as a stage has one
    os.kill(pid, signal.SIGSTOP)
    began = time.monotonic()
    with pytest.raises(redis.exceptions.TimeoutError):
        client.get("k")
    assert time.monotonic() - began < HUNG_FOR_S
    client.close()


def test_an_async_call_to_a_hung_redis_fails_as_a_timeout(hung: tuple[str, int]) -> None:
    url, pid = hung

    async def scenario() -> float:
        client = AsyncRedis.from_url(url, **bounded(CLIENT_S, asyncio=True))
        assert await client.ping()
        os.kill(pid, signal.SIGSTOP)
        began = time.monotonic()
        with pytest.raises(redis.exceptions.TimeoutError):
            await client.get("k")
        took = time.monotonic() - began
        await client.aclose()
        return took

    assert asyncio.run(scenario()) < HUNG_FOR_S
