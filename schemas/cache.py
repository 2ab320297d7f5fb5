"""The response-cache key, shared by admission (reads) and workers (writes).

Only deterministic requests are cacheable: greedy (temperature 0) or seeded. Entries
are per tenant: a hit on another tenant's entry would tell one tenant, by its speed,
what another one asked.
"""

from __future__ import annotations

import hashlib

import msgspec

from kinfer.schemas.messages import InferenceRequest, InferenceResult, RateLimitStatus, TokenChunk


def cacheable(request: InferenceRequest) -> bool:
    """Whether the answer is deterministic: greedy, or sampled with a seed."""
    return request.sampling.temperature == 0.0 or request.sampling.seed is not None


def cache_key(request: InferenceRequest) -> str | None:
    """Hash of tenant + model + prompt (or messages) + sampling, or None when the answer may vary."""
    if not cacheable(request):
        return None
    # Every sampling knob, by name: a knob added later (penalties, n, logprobs) is in the key
    # without anyone remembering to add it; the seed only matters when sampling.
    sampling = msgspec.to_builtins(request.sampling)
    if not request.sampling.temperature:
        sampling.pop("seed", None)
    if "logit_bias" in sampling:  # int keys: as sorted pairs
        sampling["logit_bias"] = sorted(request.sampling.logit_bias.items())
    canonical = msgspec.json.encode(
        [
            request.tenant,
            request.model,
            request.prompt,
            [[m.role, m.content] for m in request.messages],
            sampling,
        ],
        order="sorted",
    )
    return hashlib.sha256(canonical).hexdigest()


def cache_redis_key(prefix: str, key: str) -> str:
    return f"{prefix}:cache:{key}"


def as_chunks(result: InferenceResult, rate_limit: RateLimitStatus) -> list[TokenChunk]:
    """A cached answer for a streaming caller: each choice's whole text (and log-probabilities)
    as one chunk, before the result itself; the first carries the tenant's limits."""
    choices = [(0, result.text, result.logprobs), *((c.index, c.text, c.logprobs) for c in result.choices)]
    return [
        TokenChunk(
            request_id=result.request_id,
            index=i,
            text=text,
            choice=choice,
            logprobs=logprobs,
            rate_limit=rate_limit if i == 0 else None,
        )
        for i, (choice, text, logprobs) in enumerate(choices)
    ]
