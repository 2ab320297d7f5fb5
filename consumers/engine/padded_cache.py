"""kinfer's own KV store: one left-padded cache for the whole batch, over a torch :class:`CausalLM`.

Joining sequences are prefilled together and merged in (the narrower side is padded on the
left); rows that leave are dropped before the next forward pass and all-padding columns are
trimmed, so a short request never waits for a long one and never pays for it. Attention
masks keep every row independent of its neighbours: a sequence's greedy tokens are the same
whatever it is batched with (tested).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from kinfer.consumers.engine.model_api import CausalLM, KVCache


class PaddedCache:
    """A :class:`~kinfer.consumers.engine.decode_batch.SequenceStore` over a torch model."""

    def __init__(self, model: CausalLM, pad_id: int, device: torch.device) -> None:
        self.model = model
        self.pad_id = pad_id
        self.device = device
        self._cache: KVCache = []
        self._mask = torch.zeros((0, 0), dtype=torch.bool, device=device)
        self._last_pos = torch.zeros(0, dtype=torch.long, device=device)

    @property
    def max_context(self) -> int:
        return self.model.max_context

    @property
    def width(self) -> int:
        """Cache columns: what the next decode step attends over."""
        return int(self._mask.shape[1])

    def prefill(self, prompts: Sequence[list[int]], copies: Sequence[int]) -> torch.Tensor:
        ids, mask, positions = self._left_pad(prompts)
        logits, cache = self.model(ids, mask, positions)
        if any(c != 1 for c in copies):  # a request's n choices: one prefill, its row repeated
            index = torch.tensor([i for i, c in enumerate(copies) for _ in range(c)], device=self.device)
            logits, mask, positions = logits[index], mask[index], positions[index]
            cache = [(k.index_select(0, index), v.index_select(0, index)) for k, v in cache]
        if not self._cache:
            self._cache, self._mask, self._last_pos = cache, mask, positions[:, -1]
            return logits
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
        return logits

    def decode(self, tokens: Sequence[int]) -> torch.Tensor:
        ids = torch.tensor(list(tokens), device=self.device).unsqueeze(1)
        self._mask = torch.cat([self._mask, torch.ones_like(self._mask[:, :1])], dim=1)
        self._last_pos = self._last_pos + 1
        logits, self._cache = self.model(ids, self._mask, self._last_pos.unsqueeze(1), self._cache)
        return logits

    def keep(self, rows: Sequence[int]) -> None:
        if not rows:
            self._cache, self._mask, self._last_pos = [], self._mask[:0, :0], self._last_pos[:0]
            return
        index = torch.tensor(list(rows), device=self.device)
        mask = self._mask.index_select(0, index)
        start = int(mask.any(dim=0).long().argmax())  # leading columns that are padding in every row
        self._mask = mask[:, start:]
        self._cache = [
            (k.index_select(0, index)[:, :, start:], v.index_select(0, index)[:, :, start:])
            for k, v in self._cache
        ]
        self._last_pos = self._last_pos.index_select(0, index)

    def _left_pad(self, prompts: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
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
