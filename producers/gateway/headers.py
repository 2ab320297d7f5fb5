"""OpenAI's ``x-ratelimit-*`` response headers, from the status admission stamped on an answer."""

from __future__ import annotations

from kinfer.schemas import RateLimitStatus


def rate_limit_headers(status: RateLimitStatus | None) -> dict[str, str]:
    """The six headers OpenAI sends, or none when the answer carries no status."""
    if status is None:
        return {}
    return {
        "x-ratelimit-limit-requests": str(status.limit_requests),
        "x-ratelimit-limit-tokens": str(status.limit_tokens),
        "x-ratelimit-remaining-requests": str(status.remaining_requests),
        "x-ratelimit-remaining-tokens": str(status.remaining_tokens),
        "x-ratelimit-reset-requests": duration(status.reset_requests_ms),
        "x-ratelimit-reset-tokens": duration(status.reset_tokens_ms),
    }


def duration(ms: int) -> str:
    """A duration the way OpenAI writes it: ``250ms``, ``1.5s``, ``6m0s``."""
    if ms < 1000:
        return f"{ms}ms"
    minutes, rest_ms = divmod(ms, 60_000)
    seconds = f"{rest_ms / 1000:.3f}".rstrip("0").rstrip(".")
    return f"{minutes}m{seconds}s" if minutes else f"{seconds}s"
