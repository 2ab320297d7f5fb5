"""Whether Redis is usable right now, shared by every admission feature that needs it.

When a call fails, Redis is considered down for ``retry_after_s``; features then
use their documented degraded behaviour instead of waiting on timeouts. The
first failure and the recovery are logged at error/warning level, loudly.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.exceptions
import structlog
from prometheus_client import Gauge

log = structlog.get_logger(__name__)
T = TypeVar("T")

REDIS_UP = Gauge("kinfer_admission_redis_up", "1 while admission can use Redis, 0 while degraded")


class RedisHealth:
    def __init__(self, retry_after_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.retry_after_s = retry_after_s
        self._clock = clock
        self._down_since: float | None = None
        self._next_try = 0.0
        REDIS_UP.set(1)

    async def call(self, fn: Callable[[], Awaitable[T]], fallback: Callable[[], T]) -> T:
        """``fn()`` when Redis is usable, else ``fallback()``; failures switch to degraded mode."""
        now = self._clock()
        if self._down_since is not None and now < self._next_try:
            return fallback()
        try:
            result = await fn()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            if self._down_since is None:
                self._down_since = now
                REDIS_UP.set(0)
                log.error(
                    "redis.down_degraded_mode",
                    error=str(exc),
                    effect="cache bypassed; rate limits held per admission worker; paid excess refused",
                )
            self._next_try = now + self.retry_after_s
            return fallback()
        if self._down_since is not None:
            log.warning("redis.recovered", down_s=round(now - self._down_since, 1))
            self._down_since = None
            REDIS_UP.set(1)
        return result
