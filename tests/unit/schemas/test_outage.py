"""The outage window every stage's Redis gate keeps: one try per interval while down."""

from __future__ import annotations

import asyncio

import redis

from kinfer.schemas.outage import OutageWindow
from kinfer.streams.redis_health import RedisHealth


def test_an_outage_begins_once_allows_one_try_per_interval_and_ends_with_its_length() -> None:
    window = OutageWindow(retry_after_s=1.0)
    assert window.up and window.may_try(0.0)
    assert window.failed(10.0) is True and not window.up
    assert not window.may_try(10.5) and window.may_try(11.0)
    assert window.failed(11.0) is False  # still the same outage
    assert window.succeeded(12.5) == 2.5 and window.up
    assert window.succeeded(13.0) is None


def test_admission_falls_back_without_calling_redis_inside_the_window() -> None:
    now = [0.0]
    health = RedisHealth(retry_after_s=1.0, clock=lambda: now[0])
    calls: list[int] = []

    async def down() -> int:
        calls.append(1)
        raise redis.ConnectionError("refused")

    async def up() -> int:
        return 7

    async def scenario() -> list[int]:
        out = [await health.call(down, lambda: -1) for _ in range(50)]
        now[0] = 1.0
        return [*out, await health.call(up, lambda: -1)]

    results = asyncio.run(scenario())
    assert results[:50] == [-1] * 50 and results[-1] == 7 and len(calls) == 1


def test_the_interval_counts_from_the_failure_and_one_trial_runs_at_a_time() -> None:
    window = OutageWindow(retry_after_s=1.0)
    assert window.failed(11.0)  # a call begun at 10.0 that a hung Redis timed out at 11.0
    assert not window.may_try(11.5), "the interval starts when the call failed, not when it began"
    assert window.may_try(12.0)  # claims the trial
    assert not window.may_try(12.0) and not window.may_try(30.0), "a second trial while one runs"
    window.abandoned()
    assert window.may_try(30.0)
    assert window.succeeded(30.2) == 30.2 - 11.0 and window.may_try(30.2)
