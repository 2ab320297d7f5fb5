"""Whether a worker calls Redis right now.

Redis only helps a worker (the response cache, answered-id markers, pool heartbeats);
answers never wait for it. After a failed call it is taken as down: calls take their
fallback at once, and a probe (a ping on a client of its own with a short timeout, in a
thread of its own so the worker's loop never waits on it) runs every ``retry_after_s``
until one answers (see ``schemas.outage``). Without a probe the trial is the next call.
The first failure and the recovery are logged once each.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import redis
import structlog

from kinfer.schemas.outage import OutageWindow
from kinfer.schemas.redis_bounds import PROBE_S, bounded

log = structlog.get_logger(__name__)
T = TypeVar("T")


class RedisGate:
    def __init__(
        self,
        retry_after_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        probe: Callable[[], object] | None = None,
    ) -> None:
        self.window = OutageWindow(retry_after_s)
        self.clock = clock
        self.probe = probe
        self._lock = threading.Lock()
        """The probe's thread and the worker's loop both record outcomes."""

    @property
    def up(self) -> bool:
        return self.window.up

    def call(self, fn: Callable[[], T], fallback: T) -> T:
        """``fn()``, or ``fallback`` while Redis is taken as down or when this call fails."""
        with self._lock:
            trial = self.window.may_try(self.clock())
            if trial and self.probe is not None and not self.window.up:
                probe = threading.Thread(target=self._run_probe, args=(self.probe,), daemon=True)
                probe.start()
                return fallback
        if not trial:
            return fallback
        try:
            result = fn()
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)
            return fallback
        except BaseException:
            self.window.abandoned()
            raise
        self._succeeded()
        return result

    def _run_probe(self, probe: Callable[[], object]) -> None:
        try:
            probe()
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)
        except BaseException:
            self.window.abandoned()
            raise
        else:
            self._succeeded()

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            began = self.window.failed(self.clock())
        if began:
            log.warning("worker.redis_unreachable", error=str(exc), effect="cache and markers skipped")

    def _succeeded(self) -> None:
        with self._lock:
            down_s = self.window.succeeded(self.clock())
        if down_s is not None:
            log.info("worker.redis_recovered", down_s=round(down_s, 1))


def ping_probe(url: str | None) -> Callable[[], object] | None:
    """A ping on a client of its own, bounded by ``PROBE_S`` (none without Redis)."""
    return redis.Redis.from_url(url, **bounded(PROBE_S)).ping if url else None
