"""Two token buckets per tenant (requests and tokens), as pure arithmetic.

This is the reference the Redis script implements, and the local fallback
while Redis is down. Time is passed in (ms), never read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kinfer.schemas import RateLimitStatus
from kinfer.streams.limits.tiers import Tier


@dataclass(frozen=True)
class LimitDecision:
    allowed: bool
    retry_after_ms: int = 0
    """When refused: the exact wait until both buckets hold the cost, rounded up."""
    requests_left: float = 0.0
    """The request bucket after this decision (the cost taken when allowed)."""
    tokens_left: float = 0.0
    """The token bucket after this decision."""

    def status(self, tier: Tier) -> RateLimitStatus:
        """What a client is told about its limits (OpenAI's ``x-ratelimit-*`` headers)."""
        return RateLimitStatus(
            limit_requests=math.floor(tier.requests_per_min),
            limit_tokens=math.floor(tier.tokens_per_min),
            remaining_requests=max(0, math.floor(self.requests_left)),
            remaining_tokens=max(0, math.floor(self.tokens_left)),
            reset_requests_ms=_refill_ms(tier.request_burst - self.requests_left, tier.requests_per_min),
            reset_tokens_ms=_refill_ms(tier.token_burst - self.tokens_left, tier.tokens_per_min),
        )


def _refill_ms(missing: float, per_min: float) -> int:
    return max(0, math.ceil(missing / (per_min / 60_000) - 1e-9))


@dataclass
class BucketState:
    requests: float
    tokens: float
    ts_ms: float


def acquire(
    state: BucketState | None, tier: Tier, now_ms: float, tokens: float
) -> tuple[BucketState, LimitDecision]:
    """Take one request and ``tokens`` from the buckets, or nothing and say how long to wait."""
    req_rate = tier.requests_per_min / 60_000
    tok_rate = tier.tokens_per_min / 60_000
    if state is None:
        state = BucketState(tier.request_burst, tier.token_burst, now_ms)
    elapsed = max(0.0, now_ms - state.ts_ms)
    have_req = min(tier.request_burst, state.requests + elapsed * req_rate)
    have_tok = min(tier.token_burst, state.tokens + elapsed * tok_rate)
    wait = 0.0
    if have_req < 1:
        wait = max(wait, (1 - have_req) / req_rate)
    if have_tok < tokens:
        wait = max(wait, (tokens - have_tok) / tok_rate)
    ts = max(now_ms, state.ts_ms)
    if wait > 0:
        return BucketState(have_req, have_tok, ts), LimitDecision(False, math.ceil(wait), have_req, have_tok)
    left = BucketState(have_req - 1, have_tok - tokens, ts)
    return left, LimitDecision(True, 0, left.requests, left.tokens)


def settle(state: BucketState, tier: Tier, delta_tokens: float) -> BucketState:
    """Give back (or take) the difference between reserved and used tokens."""
    return BucketState(state.requests, min(tier.token_burst, state.tokens + delta_tokens), state.ts_ms)
