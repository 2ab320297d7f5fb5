"""Which offsets may be committed: only up to the first record not yet answered.

With continuous batching records finish out of order; committing past an
unanswered one would lose it if the worker died. Pure bookkeeping.
"""

from __future__ import annotations

TopicPartitionKey = tuple[str, int]


class OffsetTracker:
    def __init__(self) -> None:
        self._open: dict[TopicPartitionKey, set[int]] = {}
        self._next: dict[TopicPartitionKey, int] = {}
        self._committed: dict[TopicPartitionKey, int] = {}

    def consumed(self, tp: TopicPartitionKey, offset: int) -> None:
        self._open.setdefault(tp, set()).add(offset)
        self._next[tp] = max(self._next.get(tp, 0), offset + 1)

    def answered(self, tp: TopicPartitionKey, offset: int) -> None:
        self._open.get(tp, set()).discard(offset)

    def committable(self) -> dict[TopicPartitionKey, int]:
        """Per partition, the offset to commit now, where it moved since the last commit."""
        out = {}
        for tp, upto in self._next.items():
            open_offsets = self._open.get(tp)
            target = min(open_offsets) if open_offsets else upto
            if target > self._committed.get(tp, -1):
                out[tp] = target
        return out

    def mark_committed(self, offsets: dict[TopicPartitionKey, int]) -> None:
        self._committed.update(offsets)

    def forget(self, tps: list[TopicPartitionKey]) -> None:
        """Partitions taken away: their open records are the next owner's."""
        for tp in tps:
            self._open.pop(tp, None)
            self._next.pop(tp, None)
            self._committed.pop(tp, None)

    def pending(self) -> int:
        return sum(len(v) for v in self._open.values())
