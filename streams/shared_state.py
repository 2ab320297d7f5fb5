"""Admission's shared state in Redis, each read or write guarded by :class:`RedisHealth`.

Every access has the fallback docs/design/delivery.md documents for a Redis outage: limits are held per
admission worker, nothing can be queued, the cache is bypassed, breakers keep their last
view and refuse half-open probes, and a redelivered record is decided again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal

from kinfer.schemas import InferenceRequest
from kinfer.streams.breakers.state import Snapshot, State, Verdict
from kinfer.streams.breakers.store import breaker_name
from kinfer.streams.delay_queue import PumpResult, QueuedRequest
from kinfer.streams.effects import PendingAnswer
from kinfer.streams.limits.bucket import LimitDecision
from kinfer.streams.limits.limiter import LocalLimiter
from kinfer.streams.limits.reservations import Reservation
from kinfer.streams.limits.tiers import Tier
from kinfer.streams.redis_health import RedisHealth
from kinfer.streams.seams import Breakers, DelayQueue, Limiter, RequestStore
from kinfer.streams.serving import ServedView


class SharedState:
    def __init__(
        self,
        *,
        limiter: Limiter,
        breakers: Breakers,
        delay: DelayQueue,
        store: RequestStore,
        health: RedisHealth,
        clock_ms: Callable[[], int],
    ) -> None:
        self.limiter = limiter
        self.local_limiter = LocalLimiter()
        self.breakers = breakers
        self.breaker_view: dict[str, Snapshot] = {}
        self.delay = delay
        self.store = store
        self.served = ServedView()
        self.health = health
        self.clock_ms = clock_ms

    # -- decision marks ---------------------------------------------------------------

    async def decision(self, request: InferenceRequest) -> Literal["done"] | PendingAnswer | None:
        """Unknown (None) while Redis is away: the request is then decided again."""
        return await self.health.call(
            lambda: self.store.decision(request.tenant, request.request_id), lambda: None
        )

    async def remember(self, key: str, pending: PendingAnswer | None = None) -> None:
        await self.health.call(lambda: self.store.remember(key, pending), lambda: None)

    async def withdraw(self, key: str) -> None:
        await self.health.call(lambda: self.store.withdraw(key), lambda: None)

    # -- limits and reservations --------------------------------------------------------

    async def acquire(self, tenant: str, tier: Tier, tokens: int) -> LimitDecision:
        return await self.health.call(
            lambda: self.limiter.acquire(tenant, tier, tokens),
            lambda: self.local_limiter.acquire_now(tenant, tier, tokens),
        )

    async def settle(self, tenant: str, tier: Tier, delta_tokens: float) -> None:
        await self.health.call(lambda: self.limiter.settle(tenant, tier, delta_tokens), lambda: None)

    async def reserve(self, request: InferenceRequest, tier: Tier, tokens: int) -> None:
        reservation = Reservation(request.tenant, tier.name, tokens)
        await self.health.call(
            lambda: self.store.reserve(request.tenant, request.request_id, reservation), lambda: None
        )

    # -- the delay queue ------------------------------------------------------------------

    async def has_queue(self, tenant: str) -> bool:
        return await self.health.call(lambda: self.delay.waiting(tenant), lambda: 0) > 0

    async def enqueue(self, tenant: str, item: QueuedRequest, wait_ms: int, now: int) -> int | None:
        """The tenant's queue length, or None when Redis is down (nowhere durable to queue)."""
        length = await self.health.call(lambda: self.delay.enqueue(tenant, item, wait_ms, now), lambda: -1)
        return None if length < 0 else length

    async def pump(
        self, handle: Callable[[str, QueuedRequest], Awaitable[PumpResult]], band: Callable[[str], int]
    ) -> int:
        return await self.health.call(lambda: self.delay.pump(handle, self.clock_ms(), band=band), lambda: 0)

    # -- the response cache ---------------------------------------------------------------

    async def cached(self, key: str) -> bytes | None:
        raw = await self.health.call(lambda: self.store.cached(key), lambda: None)
        return raw if isinstance(raw, bytes) else None

    # -- breakers and served models ---------------------------------------------------------

    async def breaker_allows(self, region: str, model: str | None) -> tuple[bool, int]:
        """Per (region, requested model): a request naming none has the region's own breaker."""
        name = breaker_name(region, model or "")
        snap = self.breaker_view.get(name)
        if snap is None or snap.state is State.CLOSED:
            return True, 0
        now = self.clock_ms()
        open_until = snap.opened_at_ms + self.breakers.cfg.open_s * 1000
        if snap.state is State.OPEN and now < open_until:
            return False, int(open_until - now)
        verdict = await self.health.call(lambda: self.breakers.admit(name, now), lambda: Verdict(False, 1000))
        return verdict.allowed, verdict.retry_after_ms

    async def refresh_breakers(self) -> dict[str, Snapshot]:
        self.breaker_view = await self.health.call(self.breakers.load_all, lambda: self.breaker_view)
        return self.breaker_view

    async def refresh_served(self, regions: list[str]) -> None:
        """Re-read the workers' heartbeats (kept as last seen while Redis is away)."""

        async def read() -> None:
            self.served.update(await self.store.heartbeats(regions), self.clock_ms())

        await self.health.call(read, lambda: None)
