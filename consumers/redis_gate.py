"""Whether a worker calls Redis right now.

Redis only helps a worker (the response cache, answered-id markers, pool heartbeats);
answers never wait for it. After a failed call it is skipped for ``retry_after_s``,
so an outage costs at most one short timeout per interval, never one per record; the
first failure and the recovery are logged once each.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import redis
import structlog

from kinfer.schemas.outage import OutageWindow

log = structlog.get_logger(__name__)
T = TypeVar("T")


class RedisGate:
    def __init__(self, retry_after_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = OutageWindow(retry_after_s)
        self.clock = clock

    @property
    def up(self) -> bool:
        return self.window.up

    def call(self, fn: Callable[[], T], fallback: T) -> T:
        """``fn()``, or ``fallback`` while Redis is taken as down or when this call fails."""
        now = self.clock()
        if not self.window.may_try(now):
            return fallback
        try:
            result = fn()
        except (redis.RedisError, OSError) as exc:
            if self.window.failed(now):
                log.warning("worker.redis_unreachable", error=str(exc), effect="cache and markers skipped")
            return fallback
        if (down_s := self.window.succeeded(now)) is not None:
            log.info("worker.redis_recovered", down_s=round(down_s, 1))
        return result
