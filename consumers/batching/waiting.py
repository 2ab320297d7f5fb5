"""Requests waiting to join the running batch: in fair order (priority bands, tenants by
tokens: ``fair.py``; one tenant's own requests earliest deadline first), within a token
budget, and held back up to ``max_wait`` to fill an idle engine. Pure: the clock is passed in."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from kinfer.consumers.batching.fair import DEFAULT_LOWER_SHARE, DEFAULT_QUANTUM, FairOrder

T = TypeVar("T")

NO_DEADLINE = 2**62


@dataclass(order=True)
class _Entry(Generic[T]):
    deadline_ms: int
    seq: int
    arrived_ms: int = field(compare=False)
    tokens: int = field(compare=False)
    item: T = field(compare=False)
    rows: int = field(default=1, compare=False)
    """Sequences it decodes as (a request for ``n`` choices is ``n`` rows)."""


class WaitingQueue(Generic[T]):
    def __init__(
        self,
        *,
        max_tokens: int,
        max_rows: int,
        max_wait_ms: int,
        quantum: float = DEFAULT_QUANTUM,
        lower_share: float = DEFAULT_LOWER_SHARE,
    ) -> None:
        self.max_tokens = max_tokens
        self.max_rows = max_rows
        self.max_wait_ms = max_wait_ms
        self._order: FairOrder[_Entry[T]] = FairOrder(quantum, lower_share)
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._order)

    def add(
        self,
        item: T,
        *,
        tokens: int,
        deadline_ms: int | None,
        now_ms: int,
        rows: int = 1,
        tenant: str = "",
        band: int = 0,
        weight: float = 1.0,
    ) -> None:
        entry = _Entry(deadline_ms or NO_DEADLINE, next(self._seq), now_ms, tokens, item, rows)
        self._order.push(entry, tenant, band, weight)

    def expired(self, now_ms: int) -> list[T]:
        """Remove and return requests whose deadline passed while they waited."""
        return [e.item for e in self._order.take_if(lambda e: e.deadline_ms <= now_ms)]

    def take(self, now_ms: int, *, rows: int, tokens: int) -> list[T]:
        """What may join a batch that already holds ``rows`` sequences and ``tokens`` budget.

        An idle engine (rows == 0) waits until the budget or the row limit is full,
        or the oldest request has waited ``max_wait_ms``; a running one takes what
        fits at once (it is stepping anyway). An item larger than the whole budget
        (or with more rows than the limit) still runs, alone. The next in fair order
        that does not fit ends the take: nothing jumps the queue by being small.
        """
        if not len(self._order):
            return []
        if rows == 0 and not self._full() and now_ms - self._oldest() < self.max_wait_ms:
            return []
        taken: list[T] = []
        while (head := self._order.peek()) is not None:
            over = tokens + head.tokens > self.max_tokens or rows + head.rows > self.max_rows
            if (taken or rows) and over:
                break
            taken.append(self._order.pop().item)
            tokens, rows = tokens + head.tokens, rows + head.rows
        return taken

    def remove(self, keep: Callable[[T], bool]) -> list[T]:
        """Drop items for which ``keep(item)`` is false; returns them."""
        return [e.item for e in self._order.take_if(lambda e: not keep(e.item))]

    def items(self) -> list[T]:
        return [e.item for e in self._order.entries()]

    def wait_ms(self, now_ms: int) -> float:
        """How long an idle engine should still wait before taking what is there."""
        if not len(self._order):
            return float("inf")
        return max(0.0, self.max_wait_ms - (now_ms - self._oldest()))

    def oldest_wait_ms(self, now_ms: int) -> int:
        """How long the longest-waiting request has waited so far (0 when none waits)."""
        return max(0, now_ms - self._oldest()) if len(self._order) else 0

    def _full(self) -> bool:
        entries = list(self._order.entries())
        rows = sum(e.rows for e in entries)
        return rows >= self.max_rows or sum(e.tokens for e in entries) >= self.max_tokens

    def _oldest(self) -> int:
        return min(e.arrived_ms for e in self._order.entries())
