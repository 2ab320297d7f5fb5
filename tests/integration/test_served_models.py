"""What workers serve, as the rest of the pipeline learns it from their heartbeats."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import msgspec
import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from kinfer.producers import AsyncClient, InvalidRequest
from kinfer.producers.served_models import ServedModels
from kinfer.schemas import SamplingParams
from kinfer.schemas.serving import LIVE_FOR_MS, WorkerHeartbeat, pool_key
from tests.conftest import Services
from tests.integration.conftest import Pipeline


def test_the_gateways_view_is_the_live_heartbeats(services: Services, prefix: str) -> None:
    now = int(time.time() * 1000)
    sync = redis.Redis.from_url(services.redis_url)
    for region, worker, model, age in (
        ("us-west", "w1", "smollm2", 0),
        ("eu-central", "w2", "tiny", 1_000),
        ("eu-central", "w3", "gone", LIVE_FOR_MS + 1_000),
    ):
        beat = WorkerHeartbeat(state="active", last_seen_ms=now - age, model=model)
        sync.hset(pool_key(prefix, region), worker, msgspec.json.encode(beat))
    sync.hset(pool_key(prefix, "us-west"), "garbage", b"{not json")

    async def read() -> set[str] | None:
        client = AsyncRedis.from_url(services.redis_url)
        try:
            return await ServedModels(client, prefix, ["us-west", "eu-central"]).current()
        finally:
            await client.aclose()

    assert asyncio.run(read()) == {"smollm2", "tiny"}
    sync.delete(pool_key(prefix, "us-west"), pool_key(prefix, "eu-central"))
    assert asyncio.run(read()) == set()
    sync.close()


def test_a_model_nobody_serves_is_refused_at_once_naming_the_served_one(
    make_pipeline: Callable[[str], Pipeline], services: Services, prefix: str
) -> None:
    pipeline = make_pipeline(prefix)
    pipeline.start("admission", "admission")
    pipeline.start("worker", "worker", env={"KINFER_WORKER__MODEL": "echo"})
    pipeline.wait_serving()

    async def ask(model: str | None) -> str:
        config = services.settings(prefix).client_config(timeout_s=30)
        async with AsyncClient(config) as client:
            result = await client.generate("abc", model=model, sampling=SamplingParams(max_tokens=3))
            return result.model

    assert asyncio.run(ask("echo")) == "echo"
    assert asyncio.run(ask(None)) == "echo"
    started = time.monotonic()
    # Admission refuses it from the heartbeats; a worker would refuse it too (its message differs).
    with pytest.raises(InvalidRequest, match=r"model 'gpt-4' is not served .*echo"):
        asyncio.run(ask("gpt-4"))
    assert time.monotonic() - started < 10
