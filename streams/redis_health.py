"""Whether Redis is usable right now, shared by every admission feature that needs it.

When a call fails, Redis is considered down; features then use their documented degraded
behaviour at once instead of waiting on timeouts. While down, a probe (a ping on a client
of its own with a short timeout, see ``schemas.outage``) runs in the background every
``retry_after_s``; the first one that answers brings Redis back. The first failure and the
recovery are logged at error/warning level, loudly.
"""

from __future__ import annotations

import asyncio
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
OUTAGE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError, BUSY)

log = structlog.get_logger(__name__)
T = TypeVar("T")

REDIS_UP = Gauge("kinfer_admission_redis_up", "1 while admission can use Redis, 0 while degraded")


class RedisHealth:
    def __init__(
        self,
        retry_after_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        probe: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.window = OutageWindow(retry_after_s)
        self._clock = clock
        self._probe = probe
        """Without one (unit tests), the trial while down is the next call itself."""
        self._probing: asyncio.Task[None] | None = None
        REDIS_UP.set(1)

    async def call(self, fn: Callable[[], Awaitable[T]], fallback: Callable[[], T]) -> T:
        """``fn()`` when Redis is usable, else ``fallback()``; failures switch to degraded mode."""
        if not self.window.up and self._probe is not None:
            if self.window.may_try(self._clock()):
                self._probing = asyncio.ensure_future(self._run_probe(self._probe))
            return fallback()
        if not self.window.may_try(self._clock()):
            return fallback()
        try:
            result = await fn()
        except OUTAGE as exc:
            if isinstance(exc, BUSY) and not busy(exc):
                self.window.abandoned()
                raise  # a command Redis refused: a bug to see, not an outage
            self._failed(exc)
            return fallback()
        except BaseException:
            self.window.abandoned()
            raise
        self._succeeded()
        return result

    async def _run_probe(self, probe: Callable[[], Awaitable[object]]) -> None:
        try:
            await probe()
        except (*OUTAGE, redis.exceptions.RedisError) as exc:
            self._failed(exc)
        except BaseException:
            self.window.abandoned()
            raise
        else:
            self._succeeded()

    def _failed(self, exc: BaseException) -> None:
        if self.window.failed(self._clock()):
            REDIS_UP.set(0)
            log.error(
                "redis.down_degraded_mode",
                error=str(exc),
                effect="cache bypassed; rate limits held per admission worker; paid excess refused",
            )

    def _succeeded(self) -> None:
        if (down_s := self.window.succeeded(self._clock())) is not None:
            log.warning("redis.recovered", down_s=round(down_s, 1))
            REDIS_UP.set(1)
