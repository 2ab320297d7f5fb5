"""Token-bucket arithmetic with a simulated clock (the reference the Redis script implements)."""

from __future__ import annotations

import random

from kinfer.streams.limits.bucket import BucketState, acquire, settle
from kinfer.streams.limits.tiers import DEFAULT_TIERS

FREE = DEFAULT_TIERS["free"]  # 100/min, burst 200


def overload(seconds: float, rate_per_s: float, seed: int = 1) -> list[float]:
    """Admitted timestamps (ms) under Poisson arrivals at ``rate_per_s``."""
    rng = random.Random(seed)
    state: BucketState | None = None
    now, admitted = 0.0, []
    while now < seconds * 1000:
        now += rng.expovariate(rate_per_s) * 1000
        state, decision = acquire(state, FREE, now, tokens=10)
        if decision.allowed:
            admitted.append(now)
    return admitted


def test_sliding_window_never_exceeds_limit_plus_burst() -> None:
    admitted = overload(300, rate_per_s=100 / 60 * 10)
    j = 0
    for i, t in enumerate(admitted):
        while admitted[j] <= t - 60_000:
            j += 1
        assert i - j + 1 <= 100 + 200


def test_ten_x_overload_for_a_minute_admits_rate_times_t_plus_burst() -> None:
    admitted = overload(60, rate_per_s=100 / 60 * 10)
    expected = 100 + 200
    assert abs(len(admitted) - expected) <= 0.01 * expected


def test_retry_after_is_the_true_wait_rounded_up() -> None:
    state: BucketState | None = None
    for _ in range(200):
        state, decision = acquire(state, FREE, 0.0, tokens=1)
        assert decision.allowed
    state, refused = acquire(state, FREE, 0.0, tokens=1)
    assert not refused.allowed and refused.retry_after_ms == 600  # one request every 600 ms
    _, early = acquire(state, FREE, refused.retry_after_ms - 2, tokens=1)
    assert not early.allowed
    _, on_time = acquire(state, FREE, refused.retry_after_ms, tokens=1)
    assert on_time.allowed


def test_token_budget_limits_too_and_settlement_refunds() -> None:
    state, first = acquire(None, FREE, 0.0, tokens=40_000)
    assert first.allowed
    state, second = acquire(state, FREE, 0.0, tokens=1_000)
    assert not second.allowed and second.retry_after_ms == 3_000  # 1000 tokens at 20k/min
    state = settle(state, FREE, 39_000)  # the first request used 1000 of its 40k
    _, third = acquire(state, FREE, 0.0, tokens=1_000)
    assert third.allowed


def test_status_reports_what_is_left_and_when_it_is_full_again() -> None:
    # free: 100 requests/min (one per 600 ms), burst 200; 20k tokens/min, burst 40k.
    state, decision = acquire(None, FREE, 0.0, tokens=1000)
    status = decision.status(FREE)
    assert (status.limit_requests, status.limit_tokens) == (100, 20_000)
    assert (status.remaining_requests, status.remaining_tokens) == (199, 39_000)
    assert status.reset_requests_ms == 600  # one request back
    assert status.reset_tokens_ms == 3_000  # 1000 tokens at 20k/min

    state, decision = acquire(state, FREE, 300.0, tokens=0)  # half a request refilled meanwhile
    assert decision.status(FREE).remaining_requests == 198
    assert decision.status(FREE).reset_requests_ms == 900


def test_refused_status_shows_the_empty_bucket() -> None:
    state = BucketState(requests=0.5, tokens=40_000, ts_ms=0)
    _, decision = acquire(state, FREE, 0.0, tokens=1)
    assert not decision.allowed and decision.retry_after_ms == 300
    status = decision.status(FREE)
    assert status.remaining_requests == 0
    assert status.reset_requests_ms == 199.5 * 600
