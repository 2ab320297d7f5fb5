"""Admission's per-request state in Redis (see ``seams.RequestStore``)."""

from __future__ import annotations

from typing import Literal

import msgspec
from redis.asyncio import Redis

from kinfer.schemas.cache import cache_redis_key
from kinfer.schemas.request_keys import MARKER_TTL_S, answered_key, decided_key, request_key
from kinfer.schemas.serving import WorkerHeartbeat, decode_heartbeats, pool_key
from kinfer.streams.effects import PendingAnswer
from kinfer.streams.limits.reservations import TTL_S, Reservation, encode_reservation, reservation_key

DONE = b"1"
_pending = msgspec.json.Decoder(PendingAnswer)


class RedisRequestStore:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    async def decision(self, tenant: str, request_id: str) -> Literal["done"] | PendingAnswer | None:
        key = request_key(tenant, request_id)
        decided, answered = await self.redis.mget(
            decided_key(self.prefix, key), answered_key(self.prefix, key)
        )
        if answered is not None or decided == DONE:
            return "done"
        return None if decided is None else _pending.decode(decided)

    async def remember(self, key: str, pending: PendingAnswer | None = None) -> None:
        mark = DONE if pending is None else msgspec.json.encode(pending)
        await self.redis.set(decided_key(self.prefix, key), mark, ex=MARKER_TTL_S)

    async def withdraw(self, key: str) -> None:
        await self.redis.set(answered_key(self.prefix, key), DONE, ex=MARKER_TTL_S)

    async def cached(self, cache_key: str) -> bytes | None:
        raw = await self.redis.get(cache_redis_key(self.prefix, cache_key))
        return raw if isinstance(raw, bytes) else None

    async def reserve(self, tenant: str, request_id: str, reservation: Reservation) -> None:
        key = reservation_key(self.prefix, tenant, request_id)
        await self.redis.set(key, encode_reservation(reservation), ex=TTL_S)

    async def heartbeats(self, regions: list[str]) -> dict[str, dict[str, WorkerHeartbeat]]:
        return {r: decode_heartbeats(await self.redis.hgetall(pool_key(self.prefix, r))) for r in regions}
