"""The response-cache key, shared by admission (reads) and workers (writes).

Only deterministic requests are cacheable: greedy (temperature 0) or seeded. Entries
are per tenant: a hit on another tenant's entry would tell one tenant, by its speed,
what another one asked.
"""

from __future__ import annotations

import hashlib

import msgspec

from kinfer.schemas.messages import InferenceRequest


def cacheable(request: InferenceRequest) -> bool:
    """Whether the answer is deterministic: greedy, or sampled with a seed."""
    return request.sampling.temperature == 0.0 or request.sampling.seed is not None


def cache_key(request: InferenceRequest) -> str | None:
    """Hash of tenant + model + prompt (or messages) + sampling, or None when the answer may vary."""
    if not cacheable(request):
        return None
    s = request.sampling
    canonical = msgspec.json.encode(
        [
            request.tenant,
            request.model,
            request.prompt,
            [[m.role, m.content] for m in request.messages],
            s.max_tokens,
            s.temperature,
            s.top_p,
            s.seed if s.temperature else None,
            list(s.stop),
        ]
    )
    return hashlib.sha256(canonical).hexdigest()


def cache_redis_key(prefix: str, key: str) -> str:
    return f"{prefix}:cache:{key}"
