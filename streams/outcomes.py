"""Worker outcomes (``<prefix>.events``) drive the breakers and settle token reservations."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable

import structlog
from redis.asyncio import Redis

from kinfer.schemas import InvalidMessage, WorkerEvent, decode_event
from kinfer.schemas.errors import SERVER_ERRORS
from kinfer.streams.breakers.state import Outcomes
from kinfer.streams.breakers.store import BreakerStore, breaker_name
from kinfer.streams.limits.limiter import RedisLimiter
from kinfer.streams.limits.reservations import decode_reservation, reservation_key
from kinfer.streams.limits.tiers import ReloadingTierTable
from kinfer.streams.redis_health import RedisHealth

log = structlog.get_logger(__name__)

COUNTED = SERVER_ERRORS | {"ok"}
"""Outcomes a breaker counts: its calls, the server errors among them."""


def breaker_outcomes(events: Iterable[WorkerEvent]) -> dict[str, list[Outcomes]]:
    """Per breaker, per second: calls and server errors."""
    counts: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for e in events:
        if e.status not in COUNTED:
            continue
        slot = counts[breaker_name(e.region, e.model)][e.ts_ms // 1000]
        slot[0] += 1
        slot[1] += e.status in SERVER_ERRORS
    return {
        name: [Outcomes(sec, c, err) for sec, (c, err) in sorted(per.items())] for name, per in counts.items()
    }


class OutcomeRecorder:
    def __init__(
        self,
        *,
        redis: Redis,
        prefix: str,
        breakers: BreakerStore,
        limiter: RedisLimiter,
        tiers: ReloadingTierTable,
        health: RedisHealth,
        clock_ms: Callable[[], int],
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.breakers = breakers
        self.limiter = limiter
        self.tiers = tiers
        self.health = health
        self.clock_ms = clock_ms

    async def process(self, raw_events: Iterable[bytes | None]) -> int:
        events: list[WorkerEvent] = []
        for raw in raw_events:
            try:
                events.append(decode_event(raw or b""))
            except InvalidMessage as exc:
                log.warning("outcomes.undecodable", error=exc.message)
        if not events:
            return 0

        async def shared() -> None:
            now = self.clock_ms()
            for name, outcomes in breaker_outcomes(events).items():
                await self.breakers.record(name, outcomes, now)
            await self._settle(events)

        await self.health.call(shared, lambda: None)
        return len(events)

    async def _settle(self, events: list[WorkerEvent]) -> None:
        """Give back reserved tokens the request did not use (or take what it used beyond)."""
        keys = [reservation_key(self.prefix, e.tenant, e.request_id) for e in events]
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.getdel(key)
            reserved = await pipe.execute()
        settling = []
        for event, raw in zip(events, reserved, strict=True):
            if raw is None:
                continue  # settled already (a redelivered event), or expired
            resv = decode_reservation(raw)
            used = event.prompt_tokens + event.completion_tokens
            tier = self.tiers.table.tiers.get(resv.tier)
            if tier is not None and resv.tokens != used:
                settling.append(self.limiter.settle(resv.tenant, tier, resv.tokens - used))
        # Issued together, they share round trips (see ``redis_pipelining``). Each adds its own
        # delta; their order only matters where the bucket is clamped at its burst.
        await asyncio.gather(*settling)
