"""What live workers serve, read from their heartbeats in Redis (``schemas.serving``):
the gateway's ``/v1/models`` and its model check."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from kinfer.schemas.serving import decode_heartbeats, pool_key, served_models

REFRESH_S = 1.0


class ServedModels:
    """Re-read at most once per ``REFRESH_S``; None while Redis cannot be read."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        regions: Sequence[str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.regions = list(regions)
        self.clock = clock
        self._read_at = float("-inf")
        self._models: set[str] | None = None

    async def current(self) -> set[str] | None:
        now = self.clock()
        if now - self._read_at < REFRESH_S:
            return self._models
        self._read_at = now
        try:
            models: set[str] = set()
            for region in self.regions:
                raw = await self.redis.hgetall(pool_key(self.prefix, region))
                models |= served_models(decode_heartbeats(raw), int(now * 1000))
        except (RedisError, OSError):
            self._models = None
        else:
            self._models = models
        return self._models
