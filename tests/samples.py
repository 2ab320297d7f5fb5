"""Sample wire values shared by unit tests of different stages."""

from __future__ import annotations

from schemas import RateLimitStatus


def rate_limit_status(**overrides: int) -> RateLimitStatus:
    """A free-tier status (100 requests and 20k tokens a minute), fields overridable."""
    fields = {
        "limit_requests": 100,
        "limit_tokens": 20_000,
        "remaining_requests": 99,
        "remaining_tokens": 19_000,
        "reset_requests_ms": 600,
        "reset_tokens_ms": 3_000,
    }
    return RateLimitStatus(**{**fields, **overrides})
