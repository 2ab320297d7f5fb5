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

from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from kinfer.consumers.engine.hf import HFCausalLM
from kinfer.consumers.engine.model_api import KVCache
from kinfer.consumers.engine.tiny import TinyDecoder, allowed_keys
from kinfer.consumers.parallel.group import RankGroup, guard


class Stage(nn.Module):
    """One stage's :class:`CausalLM` call: micro-batches in, activations on, logits to rank 0.
    A model's stage says how to embed, run its layers, and turn a hidden state into logits."""

    def __init__(self, group: RankGroup, hidden_size: int, vocab_size: int, max_context: int) -> None:
        super().__init__()
        self.group = group
        stages = group.layout.pipeline
        self.first, self.last = group.stage == 0, group.stage == stages - 1
        self.micro_batches = stages
        self.hidden_size, self.vocab_size, self._max_context = hidden_size, vocab_size, max_context

    @property
    def max_context(self) -> int:
        return self._max_context

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def embed(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def run_layers(
        self, x: torch.Tensor, allowed: torch.Tensor, positions: torch.Tensor, past: KVCache | None
    ) -> tuple[torch.Tensor, KVCache]:
        raise NotImplementedError

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

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
            x = self.embed(ids[rows], positions[rows]) if self.first else self._receive(ids[rows].shape)
            rows_past = [(k[rows], v[rows]) for k, v in past] if past else None
            x, cache = self.run_layers(x, allowed[rows], positions[rows], rows_past)
            caches.append(cache)
            if self.last:
                logits.append(self.logits(x[:, -1]))
            elif (work := self._send_on(x)) is not None:
                sent.append(work)
        for work in sent:
            guard(work.wait)
        merged = [
            (torch.cat([c[i][0] for c in caches]), torch.cat([c[i][1] for c in caches]))
            for i in range(len(caches[0]))
        ]
        return self._to_rank_zero(torch.cat(logits) if logits else None, ids.shape[0]), merged

    def _send_on(self, x: torch.Tensor) -> dist.Work | None:
        """To the same tensor rank of the next stage, without waiting: the next micro-batch
        is computed meanwhile."""
        out = x.contiguous()
        return guard(lambda: dist.isend(out, self.group.neighbour(self.group.stage + 1)))

    def _receive(self, shape: torch.Size) -> torch.Tensor:
        x = torch.empty(*shape, self.hidden_size, dtype=self.dtype, device=self._device)
        guard(lambda: dist.recv(x, self.group.neighbour(self.group.stage - 1)))
        return x

    @property
    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def _to_rank_zero(self, logits: torch.Tensor | None, rows: int) -> torch.Tensor:
        """Rank 0 gets the last stage's logits; other ranks return an empty (rows, 0)."""
        group = self.group
        last_stage_rank = group.layout.rank_at(group.layout.pipeline - 1, 0)
        if logits is not None and group.rank == last_stage_rank and not group.is_leader:
            out = logits.contiguous()
            guard(lambda: dist.send(out, 0))
        if not group.is_leader:
            return torch.zeros(rows, 0, device=self._device)
        if logits is not None:
            return logits
        received = torch.empty(rows, self.vocab_size, dtype=self.dtype, device=self._device)
        guard(lambda: dist.recv(received, last_stage_rank))
        return received


class TinyStage(Stage):
    """A stage of kinfer-tiny."""

    vocab_mask: torch.Tensor

    def __init__(self, model: TinyDecoder, layers: range, group: RankGroup) -> None:
        cfg = model.cfg
        super().__init__(group, cfg.d_model, cfg.vocab_size, cfg.max_context)
        self.logit_scale = cfg.logit_scale
        self.tok = model.embed if self.first else None
        self.pos = model.pos if self.first else None
        self.blocks = nn.ModuleList(model.blocks[i] for i in layers)
        self.ln_f = model.ln_f if self.last else None
        self.head = model.head if self.last else None
        self.register_buffer("vocab_mask", model.vocab_mask, persistent=False)

    def embed(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        assert self.tok is not None and self.pos is not None
        embedded: torch.Tensor = self.tok(ids) + self.pos(positions)
        return embedded

    def run_layers(
        self, x: torch.Tensor, allowed: torch.Tensor, positions: torch.Tensor, past: KVCache | None
    ) -> tuple[torch.Tensor, KVCache]:
        cache: KVCache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, allowed, past[i] if past else None)
            cache.append(kv)
        return x, cache

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        assert self.ln_f is not None and self.head is not None
        logits: torch.Tensor = self.head(self.ln_f(x)) * self.logit_scale
        return logits.masked_fill(~self.vocab_mask, float("-inf"))


class LlamaStage(Stage):
    """A stage of a Hugging Face Llama-family model (embed_tokens, layers, norm, lm_head,
    rotary embeddings): SmolLM2 and its kin. The other layers are dropped from this rank."""

    def __init__(self, model: HFCausalLM, layers: range, group: RankGroup) -> None:
        inner: Any = model.inner
        base, config = inner.model, inner.config
        super().__init__(group, config.hidden_size, config.vocab_size, model.max_context)
        self.tok = base.embed_tokens if self.first else None
        self.layers = nn.ModuleList(base.layers[i] for i in layers)
        for local, layer in enumerate(self.layers):
            attention: Any = layer.self_attn
            attention.layer_idx = local  # this stage's cache holds its own layers only
        self.rotary = base.rotary_emb
        self.norm = base.norm if self.last else None
        self.lm_head = inner.lm_head if self.last else None

    def embed(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        assert self.tok is not None
        embedded: torch.Tensor = self.tok(ids)
        return embedded

    def run_layers(
        self, x: torch.Tensor, allowed: torch.Tensor, positions: torch.Tensor, past: KVCache | None
    ) -> tuple[torch.Tensor, KVCache]:
        from transformers import DynamicCache

        cache = DynamicCache()
        for i, (keys, values) in enumerate(past or []):
            cache.update(keys, values, i)
        rotary = self.rotary(x, position_ids=positions)
        mask = allowed.unsqueeze(1)  # (rows, 1, new, keys): True = may attend
        for layer in self.layers:
            x = layer(
                x,
                attention_mask=mask,
                position_ids=positions,
                past_key_values=cache,
                use_cache=True,
                position_embeddings=rotary,
            )
        held: Any = cache.layers
        return x, [(layer.keys, layer.values) for layer in held]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        assert self.norm is not None and self.lm_head is not None
        logits: torch.Tensor = self.lm_head(self.norm(x))
        return logits
