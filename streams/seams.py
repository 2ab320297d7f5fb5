"""The admission controller's seams: what it needs from shared state, as Protocols.

Production wires Redis behind each (``limits/limiter.py``, ``breakers/store.py``,
``delay_queue.py``, ``request_store.py``) and the cluster's metadata behind the reply
check; unit tests wire small fakes, so every decision path runs without services.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Literal, Protocol

from kinfer.schemas import ReplyAddress
from kinfer.schemas.serving import WorkerHeartbeat
from kinfer.streams.breakers.state import BreakerConfig, Snapshot, Verdict
from kinfer.streams.delay_queue import PumpResult, QueuedRequest
from kinfer.streams.effects import PendingAnswer
from kinfer.streams.limits.bucket import LimitDecision
from kinfer.streams.limits.reservations import Reservation
from kinfer.streams.limits.tiers import Tier


def wall_ms() -> int:
    """The clock the stages decide by in production; tests pass their own."""
    return int(time.time() * 1000)


class Limiter(Protocol):
    async def acquire(self, tenant: str, tier: Tier, tokens: int) -> LimitDecision: ...

    async def settle(self, tenant: str, tier: Tier, delta_tokens: float) -> None: ...


class Breakers(Protocol):
    cfg: BreakerConfig

    async def admit(self, name: str, now_ms: int) -> Verdict:
        """Whether a half-open breaker lets this request through as a probe."""
        ...

    async def load_all(self) -> dict[str, Snapshot]: ...


class DelayQueue(Protocol):
    async def enqueue(self, tenant: str, item: QueuedRequest, retry_after_ms: int, now_ms: int) -> int: ...

    async def waiting(self, tenant: str) -> int: ...

    async def pump(
        self,
        handle: Callable[[str, QueuedRequest], Awaitable[PumpResult]],
        now_ms: int,
        max_tenants: int = 32,
        band: Callable[[str], int] = lambda _: 0,
    ) -> int: ...


class RequestStore(Protocol):
    """Per-request state: decision marks, the response cache, token reservations, heartbeats."""

    async def decision(self, tenant: str, request_id: str) -> Literal["done"] | PendingAnswer | None:
        """``done`` when decided by admission or answered by a worker; the pending answer when
        admission was about to answer it itself; None when never seen."""
        ...

    async def remember(self, key: str, pending: PendingAnswer | None = None) -> None:
        """Mark a :func:`~schemas.request_keys.request_key` decided (or its answer pending)."""
        ...

    async def withdraw(self, key: str) -> None:
        """Mark it answered, as a worker does once it answered: workers drop it from now on."""
        ...

    async def cached(self, cache_key: str) -> bytes | None: ...

    async def reserve(self, tenant: str, request_id: str, reservation: Reservation) -> None: ...

    async def heartbeats(self, regions: list[str]) -> dict[str, dict[str, WorkerHeartbeat]]: ...


class AnswerLedger(Protocol):
    async def was_answered(self, address: ReplyAddress, request_id: str, since_ms: int) -> bool:
        """Whether an answer for ``request_id`` reached ``address`` at or after ``since_ms``."""
        ...


class ReplyChecker(Protocol):
    async def why_unanswerable(self, address: ReplyAddress) -> str | None: ...
