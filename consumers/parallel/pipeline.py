"""Pipeline parallelism: contiguous layers per stage, activations sent stage to stage.

Every rank runs the same decode batch, so every stage already knows each step's shapes
(rows, new tokens, cache width): only activations travel. A step's rows are cut into
micro-batches that follow each other down the stages, so stage s works on micro-batch j
while stage s+1 works on j-1 (forward only; no backward to schedule). The last stage's
logits go to rank 0, which picks the tokens.

Why not ``torch.distributed.pipelining``: its schedules drive a training step (micro-batch
forward and backward over a fixed-shape ``PipelineStage``), while a decode step here has a
shape that changes every step (rows join and leave, the cache grows) and state that must
stay on each stage between steps (its layers' KV cache). An explicit stage keeps both.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from kinfer.consumers.engine.model_api import KVCache
from kinfer.consumers.engine.tiny import TinyDecoder, allowed_keys
from kinfer.consumers.parallel.group import RankGroup, guard


class TinyStage(nn.Module):
    """One stage of kinfer-tiny: the :class:`CausalLM` call over its own layers."""

    vocab_mask: torch.Tensor

    def __init__(self, model: TinyDecoder, layers: range, group: RankGroup) -> None:
        super().__init__()
        self.cfg = model.cfg
        self.group = group
        stages = group.layout.pipeline
        self.first, self.last = group.stage == 0, group.stage == stages - 1
        self.micro_batches = stages
        self.embed = model.embed if self.first else None
        self.pos = model.pos if self.first else None
        self.blocks = nn.ModuleList(model.blocks[i] for i in layers)
        self.ln_f = model.ln_f if self.last else None
        self.head = model.head if self.last else None
        self.register_buffer("vocab_mask", model.vocab_mask, persistent=False)

    @property
    def max_context(self) -> int:
        return self.cfg.max_context

    @property
    def dtype(self) -> torch.dtype:
        return next(self.blocks.parameters()).dtype

    def forward(
        self, ids: torch.Tensor, key_mask: torch.Tensor, positions: torch.Tensor, past: KVCache | None = None
    ) -> tuple[torch.Tensor, KVCache]:
        allowed = allowed_keys(key_mask, ids.shape[1])
        parts = [p for p in torch.arange(ids.shape[0]).tensor_split(self.micro_batches) if len(p)]
        caches: list[KVCache] = []
        logits: list[torch.Tensor] = []
        sent: list[dist.Work] = []
        for part in parts:
            rows = slice(int(part[0]), int(part[-1]) + 1)
            x = self._input(ids[rows], positions[rows])
            cache: KVCache = []
            for i, block in enumerate(self.blocks):
                x, kv = block(x, allowed[rows], (past[i][0][rows], past[i][1][rows]) if past else None)
                cache.append(kv)
            caches.append(cache)
            if self.last:
                logits.append(self._logits(x))
            elif (work := self._send_on(x)) is not None:
                sent.append(work)
        for work in sent:
            guard(work.wait)
        merged = [
            (torch.cat([c[i][0] for c in caches]), torch.cat([c[i][1] for c in caches]))
            for i in range(len(self.blocks))
        ]
        return self._to_rank_zero(torch.cat(logits) if logits else None, ids.shape[0]), merged

    def _send_on(self, x: torch.Tensor) -> dist.Work | None:
        """To the same tensor rank of the next stage, without waiting: the next micro-batch
        is computed meanwhile."""
        out = x.contiguous()
        return guard(lambda: dist.isend(out, self.group.neighbour(self.group.stage + 1)))

    def _input(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        if self.embed is not None and self.pos is not None:
            embedded: torch.Tensor = self.embed(ids) + self.pos(positions)
            return embedded
        x = torch.empty(*ids.shape, self.cfg.d_model, dtype=self.dtype, device=ids.device)
        guard(lambda: dist.recv(x, self.group.neighbour(self.group.stage - 1)))
        return x

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        assert self.ln_f is not None and self.head is not None
        logits: torch.Tensor = self.head(self.ln_f(x[:, -1])) * self.cfg.logit_scale
        return logits.masked_fill(~self.vocab_mask, float("-inf"))

    def _to_rank_zero(self, logits: torch.Tensor | None, rows: int) -> torch.Tensor:
        """Rank 0 gets the last stage's logits; other ranks return an empty (rows, 0)."""
        group = self.group
        device = self.vocab_mask.device
        last_stage_rank = group.layout.rank_at(group.layout.pipeline - 1, 0)
        if logits is not None and group.rank == last_stage_rank and not group.is_leader:
            out = logits.contiguous()
            guard(lambda: dist.send(out, 0))
        if not group.is_leader:
            return torch.zeros(rows, 0, device=device)
        if logits is not None:
            return logits
        received = torch.empty(rows, self.cfg.vocab_size, dtype=self.dtype, device=device)
        guard(lambda: dist.recv(received, last_stage_rank))
        return received
