"""kinfer-tiny: a small decoder-only transformer with seeded weights.

It needs no download, so the whole pipeline runs anywhere. Its weights are
random (seeded, hence identical on every machine), so its text is not
meaningful; generation is restricted to printable ASCII so the output reads as
text. Learned positions, pre-norm blocks, multi-head attention with a KV cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kinfer.consumers.engine.model_api import KVCache
from kinfer.consumers.engine.tokenizer import EOS, VOCAB_SIZE


@dataclass(frozen=True)
class TinyConfig:
    vocab_size: int = VOCAB_SIZE
    d_model: int = 128
    n_layers: int = 3
    n_heads: int = 4
    d_ff: int = 384
    max_context: int = 1024
    seed: int = 20261124
    logit_scale: float = 4.0
    """Spreads the logits so greedy choices are far from ties (stable under batching)."""


class Block(nn.Module):
    def __init__(self, cfg: TinyConfig) -> None:
        super().__init__()
        self.head_dim = cfg.d_model // cfg.n_heads
        self.ln1 = nn.LayerNorm(cfg.d_model)
        # Separate projections, so tensor parallelism can split each by heads (column-wise).
        self.q = nn.Linear(cfg.d_model, cfg.d_model)
        self.k = nn.Linear(cfg.d_model, cfg.d_model)
        self.v = nn.Linear(cfg.d_model, cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.d_model, cfg.d_ff), nn.GELU(), nn.Linear(cfg.d_ff, cfg.d_model)
        )

    def forward(
        self, x: torch.Tensor, allowed: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        b, t, _ = x.shape
        h = self.ln1(x)
        # Under tensor parallelism each rank holds some of the heads: width / head_dim of them.
        q, k, v = (z.view(b, t, -1, self.head_dim).transpose(1, 2) for z in (self.q(h), self.k(h), self.v(h)))
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed.unsqueeze(1))
        x = x + self.proj(att.transpose(1, 2).reshape(b, t, -1))
        x = x + self.mlp(self.ln2(x))
        return x, (k, v)


class TinyDecoder(nn.Module):
    """forward(ids, key_mask, positions, past) -> (logits of the last position, cache)."""

    vocab_mask: torch.Tensor
    """True for tokens generation may pick (printable ASCII, newline, EOS)."""

    def __init__(self, cfg: TinyConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.max_context, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.register_buffer("vocab_mask", _printable_mask(cfg.vocab_size), persistent=False)

    @property
    def max_context(self) -> int:
        return self.cfg.max_context

    def forward(
        self,
        ids: torch.Tensor,
        key_mask: torch.Tensor,
        positions: torch.Tensor,
        past: KVCache | None = None,
    ) -> tuple[torch.Tensor, KVCache]:
        """``ids``/``positions``: (B, T) new tokens; ``key_mask``: (B, past + T), False = padding."""
        t = ids.shape[1]
        allowed = allowed_keys(key_mask, t)
        x = self.embed(ids) + self.pos(positions)
        cache: KVCache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, allowed, past[i] if past is not None else None)
            cache.append(kv)
        logits = self.head(self.ln_f(x[:, -1])) * self.cfg.logit_scale
        return logits.masked_fill(~self.vocab_mask, float("-inf")), cache


def allowed_keys(key_mask: torch.Tensor, new: int) -> torch.Tensor:
    """(B, new, keys) attention permission: causal, no padding keys, always self."""
    keys = key_mask.shape[1]
    q_index = torch.arange(keys - new, keys, device=key_mask.device).unsqueeze(1)
    k_index = torch.arange(keys, device=key_mask.device).unsqueeze(0)
    causal = k_index <= q_index
    allowed = causal.unsqueeze(0) & key_mask.unsqueeze(1)
    # A padding query would see no key at all (NaN); let it see itself. Its output is unused.
    return allowed | (k_index == q_index).unsqueeze(0)


def _printable_mask(vocab_size: int) -> torch.Tensor:
    mask = torch.zeros(vocab_size, dtype=torch.bool)
    mask[32:127] = True
    mask[ord("\n")] = True
    mask[EOS] = True
    return mask


def build_tiny(cfg: TinyConfig | None = None) -> TinyDecoder:
    """kinfer-tiny with its deterministic seeded weights."""
    cfg = cfg or TinyConfig()
    model = TinyDecoder(cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.zero_()
            elif "ln" in name:
                param.fill_(1.0)
            elif name.endswith((".k.weight", ".v.weight")):
                continue  # drawn with q below
            elif name.endswith(".q.weight"):
                # One (3d, d) draw split three ways: the weights of the fused q/k/v projection
                # kinfer-tiny always had, so its text is the same as before the split.
                block = model.get_submodule(name.removesuffix(".q.weight"))
                assert isinstance(block, Block)
                fused = torch.empty(3 * cfg.d_model, cfg.d_model)
                fused.normal_(0.0, cfg.d_model**-0.5, generator=gen)
                for proj, part in zip((block.q, block.k, block.v), torch.chunk(fused, 3), strict=True):
                    proj.weight.copy_(part)
            else:
                param.normal_(
                    0.0, 0.02 if "embed" in name or "pos" in name else param.shape[-1] ** -0.5, generator=gen
                )
    return model.eval()
