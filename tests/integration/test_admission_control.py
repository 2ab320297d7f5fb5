"""Every reject, queue, fail-over and route path of admission, on the real broker and Redis."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable

import pytest
import redis

from kinfer.infra.stack.process import free_port
from kinfer.infra.stack.redis import RedisConfig, RedisServer
from kinfer.producers import AsyncClient, DeadlineExceeded, InternalError, RateLimited, Unavailable
from kinfer.schemas import InferenceResult, SamplingParams
from kinfer.streams.limits.reservations import reservation_key
from kinfer.streams.routing.ring import HashRing
from tests.integration.conftest import (
    Pipeline,
    families,
    metric,
    until,
    wait_for_members,
    wait_for_regions,
)

TWO_REGIONS = '{"us-west": 50, "eu-central": 50}'
TIER = """
[tiers.{name}]
requests_per_min = {rpm}
request_burst = {burst}
tokens_per_min = 1000000
token_burst = 1000000
over_limit = "{over}"
[tenants.{tenant}]
tier = "{name}"
"""


def client_for(pipeline: Pipeline, tenant: str, **overrides: object) -> AsyncClient:
    settings = pipeline.services.settings(pipeline.prefix)
    return AsyncClient(settings.client_config(tenant=tenant, **overrides))


def breaker_state(port: int, state: str, region: str = "us-west") -> float:
    """1 when the admission process serving metrics on ``port`` sees ``region``'s breaker in
    ``state`` (its gauge follows the shared breaker it routes by)."""
    return metric(port, "kinfer_admission_breaker_state", region=region, state=state)


def users_routed_to(region: str, n: int) -> list[str]:
    ring = HashRing({"us-west": 50.0, "eu-central": 50.0})
    return [u for u in (f"user-{i}" for i in range(10_000)) if ring.node(u) == region][:n]


def test_free_tier_over_limit_is_rate_limited_with_true_retry_after(
    make_pipeline: Callable[[str], Pipeline], prefix: str
) -> None:
    pipeline = make_pipeline(prefix)
    pipeline.tiers += TIER.format(name="tiny", rpm=60, burst=3, over="reject", tenant="small")
    pipeline.start("admission", "admission")
    pipeline.start("worker", "worker", env={"KINFER_WORKER__MODEL": "echo"})
    pipeline.wait_serving()

    async def scenario() -> None:
        async with client_for(pipeline, "small") as client:
            for i in range(3):
                result = await client.generate(f"burst {i}")
                assert result.text == f"burst {i}"[::-1]
                # Each answer carries the buckets as admission left them, through the worker.
                assert result.rate_limit is not None and result.rate_limit.limit_requests == 60
                assert result.rate_limit.remaining_requests == 2 - i
            with pytest.raises(RateLimited) as info:
                await client.generate("one too many")
            err = info.value
            assert err.code.value == "rate_limited" and err.retriable and err.retry_after_ms is not None
            assert err.rate_limit is not None and err.rate_limit.remaining_requests == 0
            assert err.retry_after_ms <= err.rate_limit.reset_requests_ms <= 3000
            # One request per second refills: the wait is at most that, and waiting it is enough.
            # (Its exactness against a simulated clock: tests/integration/test_rate_limits_redis.py.)
            assert 0 < err.retry_after_ms <= 1000
            await asyncio.sleep(err.retry_after_ms / 1000)
            assert (await client.generate("after waiting")).text == "after waiting"[::-1]

    asyncio.run(scenario())


def test_reserved_tokens_are_settled_with_the_real_usage(
    make_pipeline: Callable[[str], Pipeline], prefix: str
) -> None:
    """Admission reserves prompt + max_tokens; the worker's outcome gives back what was not used."""
    pipeline = make_pipeline(prefix)
    # 2000 tokens at once, refilled at one a second: a refund cannot hide behind the refill.
    pipeline.tiers += (
        "[tiers.metered]\nrequests_per_min = 1000\nrequest_burst = 1000\ntokens_per_min = 60\n"
        'token_burst = 2000\nover_limit = "reject"\n[tenants.meter]\ntier = "metered"\n'
    )
    pipeline.start("admission", "admission")
    pipeline.start("worker", "worker", env={"KINFER_WORKER__MODEL": "echo"})
    pipeline.wait_serving()

    async def scenario() -> None:
        async with client_for(pipeline, "meter") as client:
            sampling = SamplingParams(max_tokens=500)  # reserves 3 + 1 + 500 = 504
            started = time.monotonic()
            first = await client.generate("abc", sampling=sampling)
            assert first.rate_limit is not None and first.rate_limit.remaining_tokens == 2000 - 504
            used = first.usage.prompt_tokens + first.usage.completion_tokens
            # The outcome event reaches admission, which settles the reservation (and drops it).
            store = redis.Redis.from_url(pipeline.services.redis_url)
            held = reservation_key(prefix, "meter", first.request_id)
            await until(lambda: not store.exists(held), 30, "the first request's reservation to settle")
            second = await client.generate("abc", sampling=sampling)
            refill = math.ceil(time.monotonic() - started)  # at most a token a second went back
            assert second.rate_limit is not None
            # Settled: 2000 - used - 504 plus the refill; unsettled it would be about 992.
            settled = 2000 - used - 504
            assert settled <= second.rate_limit.remaining_tokens <= settled + refill

    asyncio.run(scenario())


@pytest.mark.slow
def test_paid_tier_excess_waits_in_order_survives_restart_and_expires(
    make_pipeline: Callable[[str], Pipeline], prefix: str
) -> None:
    pipeline = make_pipeline(prefix)
    pipeline.tiers += TIER.format(name="slowpro", rpm=120, burst=1, over="queue", tenant="payer")
    admission = pipeline.start("admission", "admission")
    pipeline.start("worker", "worker", env={"KINFER_WORKER__MODEL": "echo"})
    pipeline.wait_serving()

    async def scenario() -> None:
        async with client_for(pipeline, "payer", timeout_s=60) as client:
            finished: list[int] = []

            async def one(i: int) -> InferenceResult:
                result = await client.generate(f"queued {i}")
                finished.append(i)
                return result

            tasks = [asyncio.create_task(one(i)) for i in range(6)]
            await asyncio.sleep(0.05)
            doomed = asyncio.create_task(client.generate("too late", timeout_s=1.0))
            # Restart admission while requests wait in the queue: nothing may be lost.
            await asyncio.sleep(0.6)
            admission.stop()
            pipeline.start("admission2", "admission")
            results = await asyncio.gather(*tasks)
            assert [r.text for r in results] == [f"queued {i}"[::-1] for i in range(6)]
            assert finished == sorted(finished), f"per-tenant arrival order broken: {finished}"
            with pytest.raises(DeadlineExceeded):
                await doomed

    asyncio.run(scenario())


def test_breaker_opens_on_failing_region_and_fails_over(
    make_pipeline: Callable[[str], Pipeline], prefix: str
) -> None:
    pipeline = make_pipeline(prefix)
    pipeline.tiers = (
        pipeline.tiers + '\n[tenants.us-only]\ntier = "enterprise"\nresidency = "us"\n'
        '[tenants.eu-only]\ntier = "enterprise"\nresidency = "eu"\n'
    )
    env = {
        "KINFER_REGION_WEIGHTS": TWO_REGIONS,
        "KINFER_ADMISSION__BREAKER_MIN_CALLS": "10",
        "KINFER_ADMISSION__BREAKER_OPEN_S": "60",
    }
    port = free_port()
    pipeline.start("admission", "admission", env={**env, "KINFER_METRICS_PORT": str(port)})
    pipeline.start(
        "broken-us", "worker", env={**env, "KINFER_WORKER__MODEL": "fail", "KINFER_REGION": "us-west"}
    )
    pipeline.start(
        "healthy-eu", "worker", env={**env, "KINFER_WORKER__MODEL": "echo", "KINFER_REGION": "eu-central"}
    )
    wait_for_regions(pipeline, ["us-west", "eu-central"])
    us_users = users_routed_to("us-west", 40)

    async def scenario() -> None:
        async with client_for(pipeline, "default", timeout_s=60) as client:
            # Failing region: internal errors until the breaker has seen min_calls outcomes.
            failures = 0
            for user in us_users[:12]:
                try:
                    await client.generate("x", user=user)
                except InternalError:
                    failures += 1
            assert failures >= 10
            await until(lambda: breaker_state(port, "open") == 1, 30, "the us-west breaker to open")
            # Open: users of us-west are served by the next region on the ring.
            served = [await client.generate("fail over", user=u) for u in us_users[20:30]]
            assert all(r.text == "fail over"[::-1] for r in served)
        async with client_for(pipeline, "us-only", timeout_s=30) as pinned:
            with pytest.raises(Unavailable, match="pinned to us-west") as info:
                await pinned.generate("stay home", user=us_users[0])
            assert info.value.retry_after_ms is not None and 0 < info.value.retry_after_ms <= 60_000
        async with client_for(pipeline, "eu-only", timeout_s=30) as eu:
            assert (await eu.generate("eu", user=us_users[0])).text == "ue"

    asyncio.run(scenario())


@pytest.mark.slow
def test_breaker_half_opens_and_closes_once_the_region_recovers(
    make_pipeline: Callable[[str], Pipeline], prefix: str
) -> None:
    pipeline = make_pipeline(prefix)
    port = free_port()
    env = {
        "KINFER_REGION_WEIGHTS": TWO_REGIONS,
        "KINFER_ADMISSION__BREAKER_MIN_CALLS": "10",
        "KINFER_ADMISSION__BREAKER_OPEN_S": "3",
        "KINFER_ADMISSION__BREAKER_PROBES": "3",
    }
    pipeline.start("admission", "admission", env={**env, "KINFER_METRICS_PORT": str(port)})
    broken = pipeline.start(
        "broken-us", "worker", env={**env, "KINFER_WORKER__MODEL": "fail", "KINFER_REGION": "us-west"}
    )
    pipeline.start(
        "healthy-eu", "worker", env={**env, "KINFER_WORKER__MODEL": "echo", "KINFER_REGION": "eu-central"}
    )
    wait_for_regions(pipeline, ["us-west", "eu-central"])  # else us-west's users go elsewhere
    us_users = users_routed_to("us-west", 200)

    async def scenario() -> None:
        async with client_for(pipeline, "default", timeout_s=60) as client:
            for user in us_users[:12]:
                with contextlib.suppress(InternalError):
                    await client.generate("x", user=user)
            await until(lambda: breaker_state(port, "open") == 1, 10, "the us-west breaker to open")
            # The region heals: its failing worker goes, a healthy one takes its partitions.
            broken.stop()
            pipeline.start(
                "healed-us", "worker", env={**env, "KINFER_WORKER__MODEL": "echo", "KINFER_REGION": "us-west"}
            )
            to_us_before = metric(port, "kinfer_admission_admitted_total", region="us-west")
            # Past open_s the breaker half-opens: probes reach us-west, the rest still fail over.
            # Every request is answered either way; once the probes succeed it closes.
            deadline = time.monotonic() + 90
            for i, user in enumerate(us_users[20:]):
                result = await client.generate(f"heal {i}", user=user)
                assert result.text == f"heal {i}"[::-1]
                if breaker_state(port, "closed") == 1:
                    break
                assert time.monotonic() < deadline, "the breaker never closed"
                await asyncio.sleep(0.2)
            # Closed (the gauge is admission's own view): us-west users are routed home again.
            after_close = metric(port, "kinfer_admission_admitted_total", region="us-west")
            for i, user in enumerate(us_users[150:160]):
                assert (await client.generate(f"home {i}", user=user)).text == f"home {i}"[::-1]
            assert metric(port, "kinfer_admission_admitted_total", region="us-west") == after_close + 10
            assert after_close > to_us_before  # the probes themselves went to us-west

    asyncio.run(scenario())


def test_deterministic_answers_come_from_the_cache_without_a_worker(
    make_pipeline: Callable[[str], Pipeline], prefix: str
) -> None:
    pipeline = make_pipeline(prefix)
    pipeline.start("admission", "admission")
    worker = pipeline.start("worker", "worker")
    pipeline.wait_serving()

    async def scenario() -> None:
        async with client_for(pipeline, "default", timeout_s=30) as client:
            first = await client.generate("cache me", sampling=SamplingParams(max_tokens=8))
            assert first.worker_id != "cache"
            worker.stop()
            second = await client.generate("cache me", sampling=SamplingParams(max_tokens=8))
            assert second.worker_id == "cache" and second.text == first.text
            assert second.request_id != first.request_id
            # The cache keeps answers without anyone's limits; a hit carries its own admission's.
            assert second.rate_limit is not None and second.rate_limit.limit_requests == 10_000
            store = redis.Redis.from_url(pipeline.services.redis_url)
            entries = [store.get(k) for k in store.scan_iter(f"{prefix}:cache:*")]
            store.close()
            assert entries and all(b"rate_limit" not in e for e in entries if e)
            with pytest.raises(DeadlineExceeded):  # sampled without a seed: not cacheable, no worker
                await client.generate(
                    "cache me", sampling=SamplingParams(max_tokens=8, temperature=1.0), timeout_s=3
                )

    asyncio.run(scenario())


@pytest.mark.slow
def test_admission_keeps_serving_while_redis_is_down_and_recovers(
    make_pipeline: Callable[[str], Pipeline], prefix: str, tmp_path: object
) -> None:
    from pathlib import Path

    redis_server = RedisServer(RedisConfig(state_dir=Path(str(tmp_path)) / "own-redis", port=free_port()))
    redis_server.start()
    pipeline = make_pipeline(prefix)
    metrics_port = free_port()
    own = {"KINFER_REDIS_URL": redis_server.config.url}
    admission = pipeline.start(
        "admission", "admission", env={**own, "KINFER_METRICS_PORT": str(metrics_port)}
    )
    pipeline.start("worker", "worker", env={**own, "KINFER_WORKER__MODEL": "echo"})
    try:
        pipeline.wait_serving()

        async def send(client: AsyncClient, tag: str) -> None:
            results = await asyncio.gather(*(client.generate(f"{tag} {i}") for i in range(20)))
            assert [r.text for r in results] == [f"{tag} {i}"[::-1] for i in range(20)]

        async def scenario() -> None:
            async with client_for(pipeline, "default", timeout_s=60) as client:
                await send(client, "before")
                redis_server.stop()
                await send(client, "during")
                redis_server.start()
                await until(
                    lambda: metric(metrics_port, "kinfer_admission_redis_up") == 1.0, 15, "Redis back in use"
                )
                await send(client, "after")

        asyncio.run(scenario())
        assert metric(metrics_port, "kinfer_admission_redis_up") == 1.0, "Redis should be back in use"
        declared = {family.name for family in families(metrics_port)}  # counters drop "_total"
        for name in (
            "kinfer_admission_admitted",
            "kinfer_admission_rejected",
            "kinfer_admission_cache",
            "kinfer_admission_decision_seconds",
        ):
            assert name in declared, name
        log = admission.tail(400)
        assert "redis.down_degraded_mode" in log and "redis.recovered" in log
    finally:
        redis_server.stop()


def test_every_admission_worker_sees_the_breaker_another_opened(
    make_pipeline: Callable[[str], Pipeline], prefix: str
) -> None:
    """Two admission workers share the ingress partitions; outcomes reach only one of them,
    yet both route around the open breaker (each refreshes it every second: the test waits for
    both gauges and prints how long that took rather than asserting a time)."""
    pipeline = make_pipeline(prefix)
    env = {
        "KINFER_REGION_WEIGHTS": TWO_REGIONS,
        "KINFER_ADMISSION__BREAKER_MIN_CALLS": "10",
        "KINFER_ADMISSION__BREAKER_OPEN_S": "60",
    }
    ports = [free_port(), free_port()]
    for i, port in enumerate(ports):
        pipeline.start(f"admission{i}", "admission", env={**env, "KINFER_METRICS_PORT": str(port)})
    pipeline.start(
        "broken-us", "worker", env={**env, "KINFER_WORKER__MODEL": "fail", "KINFER_REGION": "us-west"}
    )
    pipeline.start(
        "healthy-eu", "worker", env={**env, "KINFER_WORKER__MODEL": "echo", "KINFER_REGION": "eu-central"}
    )
    us_users = users_routed_to("us-west", 60)
    wait_for_members(pipeline, f"{prefix}-admission", pipeline.names.requests, 2)

    async def scenario() -> None:
        async with client_for(pipeline, "default", timeout_s=90) as client:
            failures = 0
            for user in us_users[:12]:  # the last ones may already be routed around the breaker
                try:
                    await client.generate("x", user=user)
                except InternalError:
                    failures += 1
            assert failures >= 10
        failed_at = time.monotonic()

        def both_open() -> bool:
            return all(breaker_state(port, "open") == 1 for port in ports)

        await until(both_open, 30, "both admission workers to see the breaker open", every_s=0.05)
        print(f"both saw the breaker open {time.monotonic() - failed_at:.2f} s after the last failure")
        # Many tenants: their records (key = tenant) land on both admission workers' partitions.
        # Each prompt differs, so none is answered from the cache before it is routed.
        for i in range(24):
            async with client_for(pipeline, f"tenant-{i}", timeout_s=30) as client:
                assert (await client.generate(f"fine {i}", user=us_users[20 + i])).text == f"fine {i}"[::-1]

    asyncio.run(scenario())
    for port in ports:
        moved = metric(
            port, "kinfer_admission_failed_over_total", from_region="us-west", to_region="eu-central"
        )
        # Phase one (one tenant, one partition) fails over at most twice, so most of these are phase two's.
        assert moved >= 3, f"admission on :{port} did not route around the breaker"
