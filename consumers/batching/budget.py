"""Micro-batch formation by token budget: pure logic, no Kafka, no torch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def split_by_budget(
    items: Sequence[T], cost: Callable[[T], int], *, max_tokens: int, max_items: int
) -> list[list[T]]:
    """Consecutive batches whose summed cost stays within ``max_tokens`` and ``max_items``.

    Order is kept (the caller sorts, e.g. earliest deadline first). An item that
    alone exceeds the budget gets a batch of its own: refusing it is the caller's
    decision (context limits), not the batcher's.
    """
    batches: list[list[T]] = []
    current: list[T] = []
    used = 0
    for item in items:
        c = cost(item)
        if current and (used + c > max_tokens or len(current) >= max_items):
            batches.append(current)
            current, used = [], 0
        current.append(item)
        used += c
    if current:
        batches.append(current)
    return batches
