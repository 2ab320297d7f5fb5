"""Choosing the next token per row: greedy, or temperature + top-p with a seeded stream."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from kinfer.schemas import SamplingParams


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


def pick_batch(
    logits: torch.Tensor, params: Sequence[SamplingParams], gens: Sequence[torch.Generator | None]
) -> list[int]:
    """Next token of every row of (batch, vocab) logits.

    Greedy rows take one argmax over the batch; sampled rows share one softmax and
    top-p pass, then each draws from its own (seeded) stream, so a request's samples
    do not depend on what it is batched with.
    """
    picks: list[int] = logits.argmax(dim=-1).tolist()
    sampled = [
        i for i, (p, g) in enumerate(zip(params, gens, strict=True)) if p.temperature > 0 and g is not None
    ]
    if not sampled:
        return picks
    rows = torch.tensor(sampled)
    temps = torch.tensor([params[i].temperature for i in sampled]).unsqueeze(1)
    probs = torch.softmax(logits[rows].float() / temps, dim=-1)
    top_p = torch.tensor([params[i].top_p for i in sampled]).unsqueeze(1)
    if bool((top_p < 1.0).any()):
        sorted_probs, order = torch.sort(probs, descending=True, dim=-1)
        keep = (torch.cumsum(sorted_probs, dim=-1) - sorted_probs < top_p) | (top_p >= 1.0)
        keep[:, 0] = True  # the likeliest token always stays: a top_p too small for float32 keeps one
        probs = torch.zeros_like(probs).scatter(1, order, sorted_probs * keep)
    for j, i in enumerate(sampled):
        picks[i] = int(torch.multinomial(probs[j], 1, generator=gens[i]).item())
    return picks
