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

log = structlog.get_logger(__name__)
T = TypeVar("T")


class RedisGate:
    def __init__(self, retry_after_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.retry_after_s = retry_after_s
        self.clock = clock
        self._down_since: float | None = None
        self._next_try = 0.0

    @property
    def up(self) -> bool:
        return self._down_since is None

    def call(self, fn: Callable[[], T], fallback: T) -> T:
        """``fn()``, or ``fallback`` while Redis is taken as down or when this call fails."""
        now = self.clock()
        if self._down_since is not None and now < self._next_try:
            return fallback
        try:
            result = fn()
        except (redis.RedisError, OSError) as exc:
            if self._down_since is None:
                self._down_since = now
                log.warning("worker.redis_unreachable", error=str(exc), effect="cache and markers skipped")
            self._next_try = now + self.retry_after_s
            return fallback
        if self._down_since is not None:
            log.info("worker.redis_recovered", down_s=round(now - self._down_since, 1))
            self._down_since = None
        return result
