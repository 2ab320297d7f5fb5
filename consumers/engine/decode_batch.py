"""Iteration-level (continuous) batching: sequences join and leave between decode steps.

The batch holds one left-padded KV cache. Joining sequences are prefilled
together and merged in (the narrower side is padded on the left); finished
sequences are dropped before the next forward pass, and all-padding columns are
trimmed, so a short request never waits for a long one and never pays for it.
Attention masks keep every row independent of its neighbours: a sequence's
greedy tokens are the same whatever it is batched with (tested).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

import torch

from kinfer.consumers.engine.model_api import CausalLM, Detokenizer, KVCache, TextCodec
from kinfer.consumers.engine.runner import GenerationInput, GenerationOutput
from kinfer.consumers.engine.sampling import make_generator, pick_batch

K = TypeVar("K")


@dataclass
class SequenceState(Generic[K]):
    """Decoding state of one sequence."""

    key: K
    item: GenerationInput
    prompt_len: int
    gen: torch.Generator | None
    detok: Detokenizer
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    finish: Literal["stop", "length"] | None = None
    streamed: int = 0
    """Characters of ``text`` already handed to the sink."""

    @property
    def holdback(self) -> int:
        """Trailing characters that may still turn out to start a stop sequence."""
        return max((len(s) for s in self.item.sampling.stop), default=1) - 1

    def output(self) -> GenerationOutput:
        return GenerationOutput(self.text, self.finish or "length", self.prompt_len, len(self.tokens))


class DecodeBatch(Generic[K]):
    def __init__(self, model: CausalLM, tokenizer: TextCodec, device: torch.device) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.rows: list[SequenceState[K]] = []
        self._cache: KVCache = []
        self._mask = torch.zeros((0, 0), dtype=torch.bool, device=device)
        self._last_pos = torch.zeros(0, dtype=torch.long, device=device)
        self._logits = torch.zeros((0, 0), device=device)

    def __len__(self) -> int:
        return len(self.rows)

    def keys(self) -> list[K]:
        return [row.key for row in self.rows]

    @property
    def width(self) -> int:
        """Cache columns: what the next decode step attends over."""
        return int(self._mask.shape[1])

    @torch.inference_mode()
    def join(self, items: Sequence[tuple[K, GenerationInput]]) -> None:
        """Prefill new sequences together and merge them into the running batch."""
        if not items:
            return
        prompts = [self.tokenizer.encode(item.prompt) for _, item in items]
        ids, mask, positions = self._left_pad(prompts)
        logits, cache = self.model(ids, mask, positions)
        new_rows = [
            SequenceState(
                key, item, len(p), make_generator(item.sampling, self.device), self.tokenizer.detokenizer()
            )
            for (key, item), p in zip(items, prompts, strict=True)
        ]
        if not self.rows:
            self.rows, self._cache, self._mask, self._last_pos, self._logits = (
                new_rows,
                cache,
                mask,
                positions[:, -1],
                logits,
            )
            return
        width = max(self.width, mask.shape[1])
        self._cache = [
            (
                torch.cat([_pad(k0, width, 2), _pad(k1, width, 2)]),
                torch.cat([_pad(v0, width, 2), _pad(v1, width, 2)]),
            )
            for (k0, v0), (k1, v1) in zip(self._cache, cache, strict=True)
        ]
        self._mask = torch.cat([_pad(self._mask, width, 1), _pad(mask, width, 1)])
        self._last_pos = torch.cat([self._last_pos, positions[:, -1]])
        self._logits = torch.cat([self._logits, logits])
        self.rows += new_rows

    @torch.inference_mode()
    def step(self, on_text: Callable[[K, str], None] | None = None) -> list[tuple[K, GenerationOutput]]:
        """Pick one token per sequence; return those that finished; decode the rest one step."""
        picks = self._pick()
        if on_text is not None:
            self._stream(on_text)
        keep = [i for i, row in enumerate(self.rows) if not row.finish]
        done = [(row.key, row.output()) for row in self.rows if row.finish]
        if len(keep) < len(self.rows):
            self._select(keep)
        if self.rows:
            self._decode([picks[i] for i in keep])
        return done

    def remove(self, keep: Callable[[K], bool]) -> list[K]:
        dropped = [row.key for row in self.rows if not keep(row.key)]
        if dropped:
            self._select([i for i, row in enumerate(self.rows) if keep(row.key)])
        return dropped

    def _pick(self) -> list[int]:
        picks = self._choose()
        for row, token in zip(self.rows, picks, strict=True):
            self._advance(row, token)
        return picks

    def _choose(self) -> list[int]:
        """One token per row from the last logits (a rank group's followers are told instead)."""
        samplings = [row.item.sampling for row in self.rows]
        return pick_batch(self._logits.float().cpu(), samplings, [row.gen for row in self.rows])

    def _advance(self, row: SequenceState[K], token: int) -> None:
        sampling = row.item.sampling
        if token in self.tokenizer.eos_ids:
            row.finish = "stop"
            return
        row.tokens.append(token)
        row.text += row.detok.push(token)
        for stop in sampling.stop:
            cut = row.text.find(stop)
            if cut >= 0:
                row.text = row.text[:cut]
                row.finish = "stop"
                return
        if (
            len(row.tokens) >= sampling.max_tokens
            or row.prompt_len + len(row.tokens) >= self.model.max_context
        ):
            row.finish = "length"

    def _stream(self, on_text: Callable[[K, str], None]) -> None:
        for row in self.rows:
            final = len(row.text) if row.finish else max(row.streamed, len(row.text) - row.holdback)
            if final > row.streamed:
                on_text(row.key, row.text[row.streamed : final])
                row.streamed = final

    def _select(self, keep: list[int]) -> None:
        self.rows = [self.rows[i] for i in keep]
        if not keep:
            self._cache, self._mask = [], self._mask[:0, :0]
            self._last_pos, self._logits = self._last_pos[:0], self._logits[:0]
            return
        index = torch.tensor(keep, device=self.device)
        mask = self._mask.index_select(0, index)
        start = int(mask.any(dim=0).long().argmax())  # leading columns that are padding in every row
        self._mask = mask[:, start:]
        self._cache = [
            (k.index_select(0, index)[:, :, start:], v.index_select(0, index)[:, :, start:])
            for k, v in self._cache
        ]
        self._last_pos = self._last_pos.index_select(0, index)
        self._logits = self._logits.index_select(0, index)

    def _decode(self, picks: list[int]) -> None:
        ids = torch.tensor(picks, device=self.device).unsqueeze(1)
        self._mask = torch.cat([self._mask, torch.ones_like(self._mask[:, :1])], dim=1)
        self._last_pos = self._last_pos + 1
        self._logits, self._cache = self.model(ids, self._mask, self._last_pos.unsqueeze(1), self._cache)

    def _left_pad(self, prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.tokenizer.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.bool)
        for i, prompt in enumerate(prompts):
            ids[i, width - len(prompt) :] = torch.tensor(prompt)
            mask[i, width - len(prompt) :] = True
        positions = (mask.long().cumsum(dim=1) - 1).clamp(min=0)
        return ids.to(self.device), mask.to(self.device), positions.to(self.device)


def _pad(t: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    """Left-pad ``t`` with zeros (False for masks) along ``dim`` to ``width``."""
    missing = width - t.shape[dim]
    if missing <= 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([torch.zeros(shape, dtype=t.dtype, device=t.device), t], dim=dim)
