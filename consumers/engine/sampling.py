"""Choosing the next token per row: penalties and bias, then greedy, or temperature + top-p
with a seeded stream; and the log-probabilities a request asked for."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from kinfer.schemas import SamplingParams

_SEEDS = 2**64
"""torch's generators take seeds modulo this."""


def make_generator(params: SamplingParams, device: torch.device, choice: int = 0) -> torch.Generator | None:
    """A private random stream for a sampling row: seeded when the request says so (choice
    ``i`` of ``n`` from seed + i, so the choices differ and each is reproducible)."""
    if params.temperature == 0.0:
        return None
    gen = torch.Generator(device=device)
    if params.seed is not None:
        gen.manual_seed((params.seed + choice) % _SEEDS)
    else:
        gen.seed()
    return gen


def adjusted(
    logits: torch.Tensor, params: Sequence[SamplingParams], generated: Sequence[list[int]]
) -> torch.Tensor:
    """(batch, vocab) float logits with each row's presence and frequency penalties (over the
    tokens it generated so far) and its logit bias applied; rows without them unchanged."""
    out = logits.float().clone()  # the caller's logits stay the model's (log-probabilities)
    width = out.shape[1]
    for i, (p, tokens) in enumerate(zip(params, generated, strict=True)):
        if p.penalised and tokens:
            counts = torch.bincount(torch.tensor(tokens), minlength=width)[:width].to(out.dtype)
            out[i] -= counts * p.frequency_penalty + (counts > 0).to(out.dtype) * p.presence_penalty
        if p.logit_bias:
            ids = [t for t in p.logit_bias if t < width]
            out[i, ids] += torch.tensor([p.logit_bias[t] for t in ids], dtype=out.dtype)
    return out


def pick_batch(
    logits: torch.Tensor,
    params: Sequence[SamplingParams],
    gens: Sequence[torch.Generator | None],
    generated: Sequence[list[int]] | None = None,
) -> list[int]:
    """Next token of every row of (batch, vocab) logits.

    Greedy rows take one argmax over the batch; sampled rows share one softmax and
    top-p pass, then each draws from its own (seeded) stream, so a request's samples
    do not depend on what it is batched with. ``generated``: each row's tokens so far
    (what its penalties count).
    """
    if any(p.penalised or p.logit_bias for p in params):
        logits = adjusted(logits, params, generated or [[] for _ in params])
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


RowLogprobs = tuple[float, list[tuple[int, float]]]
"""A picked token's log-probability and the top alternatives (token id, log-probability)."""


def logprobs_of(
    logits: torch.Tensor, params: Sequence[SamplingParams], picks: Sequence[int]
) -> list[RowLogprobs | None]:
    """For rows that asked for ``logprobs``: the picked token's log-probability under the
    model's own distribution (the raw logits: before temperature, penalties and bias, as
    vLLM reports by default) and its ``top_logprobs`` likeliest tokens; None for the rest."""
    wanted = [i for i, p in enumerate(params) if p.logprobs]
    out: list[RowLogprobs | None] = [None] * len(params)
    if not wanted:
        return out
    logp = torch.log_softmax(logits[torch.tensor(wanted)].float(), dim=-1)
    top_k = max(params[i].top_logprobs for i in wanted)
    top_values, top_ids = logp.topk(top_k, dim=-1) if top_k else (logp[:, :0], logp[:, :0].long())
    for j, i in enumerate(wanted):
        k = params[i].top_logprobs
        top = list(zip(top_ids[j, :k].tolist(), top_values[j, :k].tolist(), strict=True))
        out[i] = (float(logp[j, picks[i]]), top)
    return out
