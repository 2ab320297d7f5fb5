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

from kinfer.schemas.outage import OutageWindow
from kinfer.schemas.redis_bounds import busy

BUSY = redis.exceptions.ResponseError
"""How redis-py raises ``BUSY`` (see :func:`busy`); any other ``ResponseError`` is a bug."""

log = structlog.get_logger(__name__)
T = TypeVar("T")

REDIS_UP = Gauge("kinfer_admission_redis_up", "1 while admission can use Redis, 0 while degraded")


class RedisHealth:
    def __init__(self, retry_after_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = OutageWindow(retry_after_s)
        self._clock = clock
        REDIS_UP.set(1)

    async def call(self, fn: Callable[[], Awaitable[T]], fallback: Callable[[], T]) -> T:
        """``fn()`` when Redis is usable, else ``fallback()``; failures switch to degraded mode."""
        now = self._clock()
        if not self.window.may_try(now):
            return fallback()
        try:
            result = await fn()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError, BUSY) as exc:
            if isinstance(exc, BUSY) and not busy(exc):
                raise  # a command Redis refused: a bug to see, not an outage
            if self.window.failed(now):
                REDIS_UP.set(0)
                log.error(
                    "redis.down_degraded_mode",
                    error=str(exc),
                    effect="cache bypassed; rate limits held per admission worker; paid excess refused",
                )
            return fallback()
        if (down_s := self.window.succeeded(now)) is not None:
            log.warning("redis.recovered", down_s=round(down_s, 1))
            REDIS_UP.set(1)
        return result
