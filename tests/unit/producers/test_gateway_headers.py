from __future__ import annotations

import pytest

from kinfer.producers.gateway.headers import duration, rate_limit_headers
from tests.samples import rate_limit_status


@pytest.mark.parametrize(
    ("ms", "text"),
    [(0, "0ms"), (250, "250ms"), (1000, "1s"), (1500, "1.5s"), (60_000, "1m0s"), (90_250, "1m30.25s")],
)
def test_durations_are_written_like_openai(ms: int, text: str) -> None:
    assert duration(ms) == text


def test_six_headers_from_a_status_and_none_without() -> None:
    status = rate_limit_status()
    assert rate_limit_headers(status) == {
        "x-ratelimit-limit-requests": "100",
        "x-ratelimit-limit-tokens": "20000",
        "x-ratelimit-remaining-requests": "99",
        "x-ratelimit-remaining-tokens": "19000",
        "x-ratelimit-reset-requests": "600ms",
        "x-ratelimit-reset-tokens": "3s",
    }
    assert rate_limit_headers(None) == {}
