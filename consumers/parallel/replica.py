"""The continuous batch over a rank group: rank 0's batch sends every change to the replicas.

Each rank runs the same :class:`DecodeBatch` code over its own shard of the model, so its KV
cache (its heads, its layers) joins, steps, drops rows and trims columns exactly as rank 0's
does. Only rank 0 picks tokens (it alone holds the logits in a pipeline); the followers are
told its picks, so a sampled token is the same on every rank.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import structlog
import torch
import torch.distributed as dist

from kinfer.consumers.engine.decode_batch import DecodeBatch
from kinfer.consumers.engine.model_api import CausalLM, TextCodec
from kinfer.consumers.engine.padded_cache import PaddedCache
from kinfer.consumers.engine.runner import (
    Ended,
    GenerationInput,
    GenerationOutput,
    TextDelta,
    TokenSink,
    decode_all,
)
from kinfer.consumers.engine.sampling import RowLogprobs
from kinfer.consumers.engine.torch_runner import TorchRunner
from kinfer.consumers.parallel.channel import Channel, Close, Join, Open, Remove, Step, Stop
from kinfer.consumers.parallel.group import RankGroup, guard
from kinfer.schemas import ChatMessage, SamplingParams

K = TypeVar("K")
log = structlog.get_logger(__name__)


class LeaderBatch(DecodeBatch[K]):
    """Rank 0's batch: the worker's; each change is sent to the followers first. Followers
    know a sequence by a number (the worker's keys are its jobs) and a row by its place."""

    def __init__(
        self, model: CausalLM, tokenizer: TextCodec, device: torch.device, channel: Channel, ident: int
    ):
        super().__init__(PaddedCache(model, tokenizer.pad_id, device), tokenizer, device)
        self.channel = channel
        self.ident = ident
        self._numbers = itertools.count()
        channel.send(Open(ident))

    def join(self, items: Sequence[tuple[K, GenerationInput]]) -> None:
        if items:
            self.channel.send(Join(self.ident, [(next(self._numbers), item) for _, item in items]))
        super().join(items)

    def step(self, on_text: Callable[[K, TextDelta], None] | None = None) -> list[tuple[K, Ended]]:
        self.channel.send(Step(self.ident))
        return super().step(on_text)

    def remove(self, keep: Callable[[K], bool]) -> list[K]:
        rows = [i for i, key in enumerate(self.keys()) if not keep(key)]
        if rows:
            self.channel.send(Remove(self.ident, rows))
        return super().remove(keep)

    def close(self) -> None:
        self.channel.send(Close(self.ident))

    def _choose(self) -> list[int]:
        picks = super()._choose()
        return self.channel.share_picks(picks, len(picks))


class FollowerBatch(DecodeBatch[Any]):
    """A replica: the same rows, the picks it is told."""

    def __init__(self, model: CausalLM, tokenizer: TextCodec, device: torch.device, channel: Channel):
        super().__init__(PaddedCache(model, tokenizer.pad_id, device), tokenizer, device)
        self.channel = channel

    def _choose(self) -> list[int]:
        return self.channel.share_picks(None, len(self.rows))

    def _score(self, picks: list[int]) -> list[RowLogprobs | None]:
        return [None] * len(picks)  # the leader answers; a pipeline follower has no logits


class ParallelRunner:
    """Rank 0's :class:`ModelRunner`: a shard of the model, and followers that mirror it."""

    def __init__(self, local: TorchRunner, channel: Channel) -> None:
        self.local = local
        self.channel = channel
        self._ids = itertools.count()

    @property
    def name(self) -> str:
        return self.local.name

    @property
    def max_context(self) -> int:
        return self.local.max_context

    @property
    def vocab_size(self) -> int:
        return self.local.vocab_size

    def sampling_problem(self, sampling: SamplingParams) -> str | None:
        return self.local.sampling_problem(sampling)

    def count_tokens(self, prompt: str) -> int:
        return self.local.count_tokens(prompt)

    def unavailable(self) -> str | None:
        return None  # in this process: up while the process is

    def render_chat(self, messages: Sequence[ChatMessage]) -> str:
        return self.local.render_chat(messages)

    def parameter_bytes(self) -> int:
        return self.local.parameter_bytes()

    def batch(self) -> LeaderBatch[Any]:
        local = self.local
        return LeaderBatch(local.model, local.tokenizer, local.device, self.channel, next(self._ids))

    def generate(
        self, batch: Sequence[GenerationInput], on_text: TokenSink | None = None
    ) -> list[GenerationOutput]:
        running: LeaderBatch[int] = self.batch()
        outputs = decode_all(running, batch, on_text)
        running.close()
        return outputs

    def stop(self) -> None:
        """The followers exit cleanly."""
        self.channel.send(Stop())


def follow(local: TorchRunner, channel: Channel) -> None:
    """A follower's life: mirror rank 0's batches until it says stop (or the group fails)."""
    batches: dict[int, FollowerBatch] = {}
    while True:
        command = channel.receive()
        if isinstance(command, Stop):
            log.info("ranks.stopped", rank=channel.group.rank)
            return
        if isinstance(command, Open):
            batches[command.batch] = FollowerBatch(local.model, local.tokenizer, local.device, channel)
        elif isinstance(command, Join):
            batches[command.batch].join(command.items)
        elif isinstance(command, Step):
            batches[command.batch].step(None)
        elif isinstance(command, Remove):
            replica = batches[command.batch]
            keys = replica.keys()
            replica.remove(_all_but(frozenset(keys[row] for row in command.rows)))
        elif isinstance(command, Close):
            del batches[command.batch]


def _all_but(dropped: frozenset[Any]) -> Callable[[Any], bool]:
    return lambda key: key not in dropped


def gather_sizes(group: RankGroup, parameter_bytes: int) -> list[int]:
    """Every rank's weight bytes, on every rank (rank 0 logs and exports them)."""
    sizes: list[Any] = [None] * group.layout.world_size
    guard(lambda: dist.all_gather_object(sizes, parameter_bytes, group=group.cpu))
    return [int(size) for size in sizes]
