"""Choosing the next token per row: greedy, or temperature + top-p with a seeded stream."""

from __future__ import annotations

import torch

from schemas import SamplingParams


def make_generator(params: SamplingParams, device: torch.device) -> torch.Generator | None:
    """A private random stream for a sampling row: seeded when the request says so."""
    if params.temperature == 0.0:
        return None
    gen = torch.Generator(device=device)
    if params.seed is not None:
        gen.manual_seed(params.seed)
    else:
        gen.seed()
    return gen


def pick(logits: torch.Tensor, params: SamplingParams, gen: torch.Generator | None) -> int:
    """Next token of one row from its (vocab,) logits."""
    if params.temperature == 0.0 or gen is None:
        return int(torch.argmax(logits).item())
    probs = torch.softmax(logits.float() / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_probs, dim=-1) - sorted_probs < params.top_p
        sorted_probs = sorted_probs * keep
        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=gen).item())
