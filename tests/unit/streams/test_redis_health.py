"""Admission's view of Redis: degraded for a while after a failure, then tried again."""

from __future__ import annotations

import asyncio

import pytest
import redis.exceptions

from kinfer.streams.redis_health import REDIS_UP, RedisHealth


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def gauge() -> float:
    return REDIS_UP._value.get()  # type: ignore[attr-defined]


async def test_a_failure_degrades_until_the_retry_time_then_recovers() -> None:
    clock = Clock()
    health = RedisHealth(retry_after_s=1.0, clock=clock)
    calls: list[str] = []

    async def down() -> str:
        calls.append("down")
        raise redis.exceptions.ConnectionError("refused")

    async def up() -> str:
        calls.append("up")
        return "from redis"

    assert await health.call(down, lambda: "fallback") == "fallback"
    assert gauge() == 0
    clock.now += 0.5
    assert await health.call(up, lambda: "fallback") == "fallback", "not tried again within retry_after_s"
    assert calls == ["down"]
    clock.now += 0.6
    assert await health.call(up, lambda: "fallback") == "from redis"
    assert gauge() == 1 and calls == ["down", "up"]


async def test_other_errors_are_not_mistaken_for_an_outage() -> None:
    health = RedisHealth(clock=Clock())

    async def bug() -> str:
        raise KeyError("a bug, not Redis")

    with pytest.raises(KeyError):  # a bug surfaces; it does not fall back
        await health.call(bug, lambda: "fallback")
    assert gauge() == 1


async def test_a_busy_redis_is_away_and_other_refusals_are_bugs() -> None:
    health = RedisHealth(clock=Clock())

    async def busy() -> str:
        raise redis.exceptions.ResponseError("BUSY Redis is busy running a script")

    async def wrong() -> str:
        raise redis.exceptions.ResponseError(
            "WRONGTYPE Operation against a key holding the wrong kind of value"
        )

    assert await health.call(busy, lambda: "fallback") == "fallback"
    with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
        await RedisHealth(clock=Clock()).call(wrong, lambda: "fallback")


async def test_with_a_probe_no_call_waits_on_redis_while_it_is_away() -> None:
    """While down, every call falls back at once; the probe alone tries Redis, once per
    interval, and the first one that answers brings the calls back."""
    clock = Clock()
    answering = asyncio.Event()
    pings: list[float] = []

    async def probe() -> bool:
        pings.append(clock.now)
        if not answering.is_set():
            raise redis.exceptions.TimeoutError("hung")
        return True

    async def hung() -> str:
        raise redis.exceptions.TimeoutError("Timeout reading from socket")

    async def call() -> str:
        return "from redis"

    health = RedisHealth(retry_after_s=1.0, clock=clock, probe=probe)
    assert await health.call(hung, lambda: "fallback") == "fallback"
    clock.now += 5
    assert [await health.call(call, lambda: "fallback") for _ in range(20)] == ["fallback"] * 20
    await asyncio.sleep(0)  # the probe task runs (and fails)
    assert pings == [clock.now] and not health.window.up
    answering.set()
    clock.now += 1
    assert await health.call(call, lambda: "fallback") == "fallback"  # starts the next probe
    await asyncio.sleep(0)
    assert health.window.up and gauge() == 1
    assert await health.call(call, lambda: "fallback") == "from redis"
