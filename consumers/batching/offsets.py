"""Which offsets may be committed: only up to the first record not yet answered, with the
records answered ahead of it named in the commit's metadata.

With continuous batching records finish out of order; committing past an unanswered one would
lose it if the worker died. The ones answered ahead of it are re-read by the partition's next
owner, which must skip them: their answers are committed already. Redis marks them too, but only
after the transaction commits, so a worker killed between the two would have them answered
twice; the committed offset's metadata (written in the same transaction as the answers) says
which they are. Pure bookkeeping.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import structlog

log = structlog.get_logger(__name__)

TopicPartitionKey = tuple[str, int]

METADATA_TAG = "kinfer-ahead:"
MAX_METADATA_CHARS = 4000
"""Kafka refuses offset metadata over ``offset.metadata.max.bytes`` (4096 by default): offsets
that would not fit are left out, and only Redis then tells their next owner they were answered."""


MAX_AHEAD = 1_000_000
"""More offsets ahead than this in one partition's metadata is not something a worker wrote."""


class Position(NamedTuple):
    """Where a partition's next owner starts, and what it skips after that."""

    offset: int
    """The first record not yet answered (the next to consume)."""
    ahead: tuple[int, ...] = ()
    """Records after it answered already, ascending."""


Offsets = dict[TopicPartitionKey, Position]
"""Per partition, its position once a transaction commits."""


class OffsetTracker:
    def __init__(self) -> None:
        self._open: dict[TopicPartitionKey, set[int]] = {}
        self._next: dict[TopicPartitionKey, int] = {}
        self._ahead: dict[TopicPartitionKey, set[int]] = {}
        """Answered, at or past the committed offset (inherited ones included)."""
        self._inherited: dict[TopicPartitionKey, set[int]] = {}
        """Answered by an earlier owner, per its commit: skipped when read again."""
        self._committed: dict[TopicPartitionKey, Position] = {}

    def consumed(self, tp: TopicPartitionKey, offset: int) -> None:
        self._open.setdefault(tp, set()).add(offset)
        self._next[tp] = max(self._next.get(tp, 0), offset + 1)

    def answered(self, tp: TopicPartitionKey, offset: int) -> None:
        self._open.get(tp, set()).discard(offset)
        self._ahead.setdefault(tp, set()).add(offset)

    def answered_before(self, tp: TopicPartitionKey, offset: int) -> bool:
        """Whether an earlier owner of the partition committed this record's answer."""
        return offset in self._inherited.get(tp, ())

    def inherit(self, tp: TopicPartitionKey, position: Position) -> None:
        """The partition's committed position, read when it is assigned (or after an abort)."""
        self._committed[tp] = position
        self._ahead[tp] = set(position.ahead)
        self._inherited[tp] = set(position.ahead)

    def committable(self) -> Offsets:
        """Per partition, the position to commit now, where it changed since the last commit:
        the offset moved, or records ahead of it were answered since."""
        out = {}
        for tp, upto in self._next.items():
            open_offsets = self._open.get(tp)
            target = min(open_offsets) if open_offsets else upto
            position = Position(target, tuple(sorted(o for o in self._ahead.get(tp, ()) if o >= target)))
            last = self._committed.get(tp)
            if last is None or target > last.offset or (target == last.offset and position != last):
                out[tp] = position
        return out

    def mark_committed(self, offsets: Offsets) -> None:
        self._committed.update(offsets)
        for tp, position in offsets.items():
            for kept in (self._ahead, self._inherited):
                if tp in kept:
                    kept[tp] = {o for o in kept[tp] if o >= position.offset}

    def forget(self, tps: Iterable[TopicPartitionKey]) -> None:
        """Partitions taken away: their open records are the next owner's."""
        for tp in tps:
            self._open.pop(tp, None)
            self._next.pop(tp, None)
            self._ahead.pop(tp, None)
            self._inherited.pop(tp, None)
            self._committed.pop(tp, None)

    def pending(self) -> int:
        return sum(len(v) for v in self._open.values())


def encode_ahead(position: Position) -> str:
    """The commit's metadata: the offsets answered ahead, as runs relative to the position
    (``kinfer-ahead:1-40,42``); those past ``MAX_METADATA_CHARS`` are left out."""
    runs: list[str] = []
    length = len(METADATA_TAG)
    for first, last in _runs(position.ahead):
        start, end = first - position.offset, last - position.offset
        run = f"{start}" if start == end else f"{start}-{end}"
        length += len(run) + 1
        if length > MAX_METADATA_CHARS:
            log.warning("worker.ahead_metadata_full", offset=position.offset, left_out_from=first)
            break
        runs.append(run)
    return METADATA_TAG + ",".join(runs) if runs else ""


def decode_ahead(offset: int, metadata: str | None) -> Position:
    """A committed offset and its metadata; metadata this worker did not write counts as none."""
    if not metadata or not metadata.startswith(METADATA_TAG):
        return Position(offset)
    ahead: list[int] = []
    try:
        for run in metadata.removeprefix(METADATA_TAG).split(","):
            first, _, last = run.partition("-")
            start, end = int(first), int(last or first)
            if not 0 <= start <= end or len(ahead) + end - start > MAX_AHEAD:
                raise ValueError(run)
            ahead.extend(range(offset + start, offset + end + 1))
    except ValueError:
        log.warning("worker.ahead_metadata_unreadable", offset=offset, metadata=metadata[:80])
        return Position(offset)
    return Position(offset, tuple(sorted(set(ahead))))


def _runs(offsets: tuple[int, ...]) -> list[tuple[int, int]]:
    """Ascending offsets as (first, last) runs of consecutive ones."""
    runs: list[list[int]] = []
    for o in offsets:
        if runs and o == runs[-1][1] + 1:
            runs[-1][1] = o
        else:
            runs.append([o, o])
    return [(first, last) for first, last in runs]
