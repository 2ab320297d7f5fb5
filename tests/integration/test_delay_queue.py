"""The delay queue on the session's Redis: order per tenant, due times, leases, and nothing
lost when a pump stops half-way."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from kinfer.streams.delay_queue import DelayQueue, PumpResult, QueuedRequest
from tests.conftest import Services


def item(n: int) -> QueuedRequest:
    return QueuedRequest(value=f"r{n}".encode(), headers=[("h", b"v")], enqueued_ms=n)


async def test_a_tenant_is_pumped_in_arrival_order_once_due(services: Services, prefix: str) -> None:
    client = Redis.from_url(services.redis_url)
    queue = DelayQueue(client, prefix)
    for n in range(3):
        assert await queue.enqueue("acme", item(n), retry_after_ms=1_000, now_ms=10_000) == n + 1
    seen: list[bytes] = []

    async def forward(tenant: str, queued: QueuedRequest) -> PumpResult:
        seen.append(queued.value)
        return PumpResult(done=True)

    assert await queue.pump(forward, now_ms=10_500) == 0, "not due before retry_after_ms"
    assert await queue.pump(forward, now_ms=11_000) == 3
    assert seen == [b"r0", b"r1", b"r2"] and await queue.waiting("acme") == 0
    assert await client.zscore(queue.due_key, "acme") is None, "an emptied tenant is forgotten"
    await client.aclose()


async def test_not_yet_keeps_the_head_and_reschedules_the_tenant(services: Services, prefix: str) -> None:
    client = Redis.from_url(services.redis_url)
    queue = DelayQueue(client, prefix)
    await queue.enqueue("acme", item(0), retry_after_ms=0, now_ms=0)
    await queue.enqueue("acme", item(1), retry_after_ms=0, now_ms=0)
    calls = 0

    async def one_then_wait(tenant: str, queued: QueuedRequest) -> PumpResult:
        nonlocal calls
        calls += 1
        return PumpResult(done=calls == 1, retry_after_ms=700)

    assert await queue.pump(one_then_wait, now_ms=100) == 1
    assert await queue.waiting("acme") == 1, "the head that was not done stays"
    assert await client.zscore(queue.due_key, "acme") == 800
    await client.aclose()


async def test_a_claimed_tenant_is_leased_to_one_pump(services: Services, prefix: str) -> None:
    client = Redis.from_url(services.redis_url)
    first, second = DelayQueue(client, prefix, lease_ms=5_000), DelayQueue(client, prefix, lease_ms=5_000)
    await first.enqueue("acme", item(0), retry_after_ms=0, now_ms=0)
    handled: list[str] = []

    async def crash_mid_pump(tenant: str, queued: QueuedRequest) -> PumpResult:
        handled.append("first")
        raise RuntimeError("the admission worker dies here")

    async def forward(tenant: str, queued: QueuedRequest) -> PumpResult:
        handled.append("second")
        return PumpResult(done=True)

    with pytest.raises(RuntimeError):
        await first.pump(crash_mid_pump, now_ms=1_000)
    assert await second.pump(forward, now_ms=2_000) == 0, "still leased to the first pump"
    assert await second.pump(forward, now_ms=6_000) == 1, "the lease ran out: nothing was lost"
    assert handled == ["first", "second"]
    await client.aclose()


async def test_due_tenants_of_a_higher_band_are_pumped_first(services: Services, prefix: str) -> None:
    client = Redis.from_url(services.redis_url)
    queue = DelayQueue(client, prefix)
    for tenant in ("free-a", "paid-a", "free-b", "paid-b"):
        await queue.enqueue(tenant, item(0), retry_after_ms=0, now_ms=0)
    order: list[str] = []

    async def forward(tenant: str, queued: QueuedRequest) -> PumpResult:
        order.append(tenant)
        return PumpResult(done=True)

    assert await queue.pump(forward, now_ms=10, band=lambda t: 1 if t.startswith("paid") else 0) == 4
    assert sorted(order[:2]) == ["paid-a", "paid-b"] and sorted(order[2:]) == ["free-a", "free-b"]
    await client.aclose()
