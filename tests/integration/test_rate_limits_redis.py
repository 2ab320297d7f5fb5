"""The shared Redis limiter on the real Redis, with a simulated clock."""

from __future__ import annotations

import asyncio
import random

from redis.asyncio import Redis

from kinfer.streams.limits.bucket import BucketState, acquire
from kinfer.streams.limits.limiter import RedisLimiter
from kinfer.streams.limits.tiers import DEFAULT_TIERS
from tests.conftest import Services

FREE = DEFAULT_TIERS["free"]


async def simulate(
    limiters: list[RedisLimiter], tenant: str, seconds: float, rate_per_s: float
) -> list[float]:
    rng = random.Random(7)
    now, admitted = 0.0, []
    while now < seconds * 1000:
        now += rng.expovariate(rate_per_s) * 1000
        limiter = rng.choice(limiters)  # several admission workers share one bucket
        if (await limiter.acquire(tenant, FREE, tokens=10, now_ms=now)).allowed:
            admitted.append(now)
    return admitted


def test_limit_holds_across_three_admission_workers(services: Services, prefix: str) -> None:
    async def scenario() -> list[float]:
        clients = [Redis.from_url(services.redis_url) for _ in range(3)]
        try:
            return await simulate([RedisLimiter(c, prefix) for c in clients], "t1", 60, 100 / 60 * 10)
        finally:
            for c in clients:
                await c.aclose()

    admitted = asyncio.run(scenario())
    assert abs(len(admitted) - 300) <= 3, len(admitted)
    j = 0
    for i, t in enumerate(admitted):
        while admitted[j] <= t - 60_000:
            j += 1
        assert i - j + 1 <= 300


def test_retry_after_and_settlement_through_redis(services: Services, prefix: str) -> None:
    async def scenario() -> None:
        client = Redis.from_url(services.redis_url)
        limiter = RedisLimiter(client, prefix)
        try:
            for _ in range(200):
                assert (await limiter.acquire("t2", FREE, tokens=1, now_ms=1000.0)).allowed
            refused = await limiter.acquire("t2", FREE, tokens=1, now_ms=1000.0)
            assert not refused.allowed and refused.retry_after_ms == 600
            assert not (await limiter.acquire("t2", FREE, tokens=1, now_ms=1598.0)).allowed
            assert (await limiter.acquire("t2", FREE, tokens=1, now_ms=1600.0)).allowed
            # Tokens: reserve the whole burst, then refund what was not used.
            assert (await limiter.acquire("t3", FREE, tokens=40_000, now_ms=0.0)).allowed
            assert not (await limiter.acquire("t3", FREE, tokens=1_000, now_ms=0.0)).allowed
            await limiter.settle("t3", FREE, 39_000)
            assert (await limiter.acquire("t3", FREE, tokens=1_000, now_ms=0.0)).allowed
            # Without a clock argument Redis's own TIME is used.
            assert (await limiter.acquire("t4", FREE, tokens=1)).allowed
        finally:
            await client.aclose()

    asyncio.run(scenario())


def test_redis_script_reports_the_same_status_as_the_reference(services: Services, prefix: str) -> None:
    """The Lua script and the pure buckets agree on what a client is told, step by step."""

    async def scenario() -> None:
        client = Redis.from_url(services.redis_url)
        limiter = RedisLimiter(client, prefix)
        rng = random.Random(3)
        state: BucketState | None = None
        now = 0.0
        try:
            for _ in range(400):
                now += rng.expovariate(4.0) * 1000
                tokens = rng.randint(1, 900)
                state, expected = acquire(state, FREE, now, tokens)
                got = await limiter.acquire("t5", FREE, tokens=tokens, now_ms=now)
                assert (got.allowed, got.retry_after_ms) == (expected.allowed, expected.retry_after_ms)
                mine, reference = got.status(FREE), expected.status(FREE)
                assert mine.remaining_requests == reference.remaining_requests
                assert mine.remaining_tokens == reference.remaining_tokens
                # Redis keeps the buckets to 6 decimals, so a reset rounded up can land 1 ms apart.
                assert abs(mine.reset_requests_ms - reference.reset_requests_ms) <= 1
                assert abs(mine.reset_tokens_ms - reference.reset_tokens_ms) <= 1
        finally:
            await client.aclose()

    asyncio.run(scenario())
