"""Admission's coalescing Redis client on the session's Redis: concurrent commands share round
trips, yet each caller gets its own answer or its own error, in order."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from kinfer.streams import metrics
from kinfer.streams.limits.limiter import RedisLimiter
from kinfer.streams.limits.tiers import DEFAULT_TIERS
from kinfer.streams.redis_pipelining import PipeliningRedis
from tests.conftest import Services


def round_trips() -> float:
    return metrics.REDIS_ROUND_TRIPS._value.get()


async def test_concurrent_commands_share_round_trips_and_keep_their_answers(
    services: Services, prefix: str
) -> None:
    client = PipeliningRedis.from_url(services.redis_url)
    try:
        before = round_trips()
        await asyncio.gather(*(client.set(f"{prefix}:k{i}", i) for i in range(200)))
        values = await asyncio.gather(*(client.get(f"{prefix}:k{i}") for i in range(200)))
        assert values == [str(i).encode() for i in range(200)]
        assert round_trips() - before <= 4  # 400 commands, issued in two turns of the loop
        # One coroutine's calls still run one after the other.
        assert await client.incr(f"{prefix}:n") == 1
        assert await client.incr(f"{prefix}:n") == 2
    finally:
        await client.aclose()


async def test_one_bad_command_fails_only_its_caller(services: Services, prefix: str) -> None:
    client = PipeliningRedis.from_url(services.redis_url)
    try:
        await client.set(f"{prefix}:text", "not a list")
        good, bad, also_good = await asyncio.gather(
            client.set(f"{prefix}:a", 1),
            client.lpush(f"{prefix}:text", "x"),  # WRONGTYPE
            client.get(f"{prefix}:a"),
            return_exceptions=True,
        )
        assert good is True and also_good == b"1"
        assert isinstance(bad, ResponseError) and "WRONGTYPE" in str(bad)
    finally:
        await client.aclose()


async def test_scripts_load_on_first_use_and_limits_hold(services: Services, prefix: str) -> None:
    client = PipeliningRedis.from_url(services.redis_url)
    await client.script_flush()  # the first EVALSHA fails NOSCRIPT inside a pipeline
    limiter = RedisLimiter(client, prefix)
    tier = DEFAULT_TIERS["free"]  # a burst of 200 requests
    try:
        decisions = await asyncio.gather(*(limiter.acquire("t", tier, 1, now_ms=1_000) for _ in range(250)))
        assert sum(d.allowed for d in decisions) == 200
    finally:
        await client.aclose()


async def test_a_caller_that_gave_up_does_not_break_the_others(services: Services, prefix: str) -> None:
    client = PipeliningRedis.from_url(services.redis_url)
    try:
        slow = asyncio.ensure_future(client.get(f"{prefix}:x"))
        other = asyncio.ensure_future(client.set(f"{prefix}:y", 1))
        slow.cancel()
        assert await other is True
        with pytest.raises(asyncio.CancelledError):
            await slow
    finally:
        await client.aclose()


async def test_a_dead_server_fails_every_caller_with_a_connection_error() -> None:
    client = PipeliningRedis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        results = await asyncio.gather(client.get("a"), client.get("b"), return_exceptions=True)
        assert all(isinstance(r, RedisConnectionError) for r in results), results
    finally:
        await client.aclose()
