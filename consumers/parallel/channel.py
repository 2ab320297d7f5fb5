"""What rank 0 tells the other ranks: commands for their batch replicas, and each step's picks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from kinfer.consumers.engine.runner import GenerationInput
from kinfer.consumers.parallel.group import RankGroup, guard


@dataclass(frozen=True)
class Open:
    batch: int


@dataclass(frozen=True)
class Join:
    batch: int
    items: Sequence[tuple[int, GenerationInput]]
    """(sequence number, what to generate)."""


@dataclass(frozen=True)
class Step:
    batch: int


@dataclass(frozen=True)
class Remove:
    batch: int
    rows: Sequence[int]
    """Places in the batch (the same on every rank) of the sequences that leave."""


@dataclass(frozen=True)
class Close:
    batch: int


@dataclass(frozen=True)
class Stop:
    """Rank 0 is done: followers exit cleanly."""


Command = Open | Join | Step | Remove | Close | Stop


class Channel:
    def __init__(self, group: RankGroup) -> None:
        self.group = group

    def send(self, command: Command) -> None:
        """Rank 0: every follower gets ``command``."""
        guard(lambda: dist.broadcast_object_list([command], src=0, group=self.group.control))

    def receive(self) -> Command:
        """A follower: the next command (waits while the worker idles)."""
        box: list[Any] = [None]
        guard(lambda: dist.broadcast_object_list(box, src=0, group=self.group.control))
        command: Command = box[0]
        return command

    def share_picks(self, picks: list[int] | None, rows: int) -> list[int]:
        """Rank 0 passes its picked tokens (one per row); a follower passes None and gets them."""
        if rows == 0:
            return []
        tensor = (
            torch.tensor(picks, dtype=torch.long)
            if picks is not None
            else torch.empty(rows, dtype=torch.long)
        )
        guard(lambda: dist.broadcast(tensor, src=0, group=self.group.cpu))
        return [int(t) for t in tensor.tolist()]
