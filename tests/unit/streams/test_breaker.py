"""The breaker state machine with a fake clock, and the window's statistics."""

from __future__ import annotations

import math
import random

from kinfer.streams.breakers.state import BreakerConfig, Outcomes, Snapshot, State, admit, record

CFG = BreakerConfig()


def binomial_tail(n: int, p: float, at_least: int) -> float:
    return sum(math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(at_least, n + 1))


def test_window_size_meets_false_and_true_trip_targets() -> None:
    n = CFG.min_calls
    trip_at = math.floor(CFG.error_rate * n) + 1  # errors > 5 % of n
    false_trip = binomial_tail(n, 0.03, trip_at)
    true_trip = binomial_tail(n, 0.10, trip_at)
    print(f"\nn={n}: P(trip | 3%)={false_trip:.5f}, P(trip | 10%)={true_trip:.6f}")
    assert false_trip <= 0.01
    assert true_trip >= 0.999


def feed(snap: Snapshot, rng: random.Random, p: float, now_ms: int, calls: int) -> Snapshot:
    errors = sum(rng.random() < p for _ in range(calls))
    return record(snap, [Outcomes(now_ms // 1000, calls, errors)], now_ms, CFG)


def test_simulated_evaluations_match_the_targets() -> None:
    """Many independent windows of min_calls outcomes, one verdict each."""
    rng = random.Random(3)
    trips = {p: 0 for p in (0.03, 0.10)}
    for p in trips:
        for _ in range(2000):
            snap = feed(Snapshot(), rng, p, 1_000, CFG.min_calls)
            trips[p] += snap.state is State.OPEN
    assert trips[0.03] / 2000 <= 0.01
    assert trips[0.10] / 2000 >= 0.999


def test_needs_min_calls_before_opening() -> None:
    snap = record(Snapshot(), [Outcomes(0, CFG.min_calls - 1, CFG.min_calls - 1)], 0, CFG)
    assert snap.state is State.CLOSED


def opened(at_ms: int = 0) -> Snapshot:
    snap = record(Snapshot(), [Outcomes(at_ms // 1000, 500, 100)], at_ms, CFG)
    assert snap.state is State.OPEN
    return snap


def test_open_rejects_with_time_left_then_half_opens() -> None:
    snap = opened(0)
    _, verdict = admit(snap, 10_000, CFG)
    assert not verdict.allowed and verdict.retry_after_ms == 20_000
    snap, verdict = admit(snap, 30_000, CFG)
    assert verdict.allowed and verdict.probe and snap.state is State.HALF_OPEN


def test_half_open_lets_a_fixed_number_of_probes_through() -> None:
    snap = opened(0)
    passed = 0
    for _ in range(CFG.probes + 5):
        snap, verdict = admit(snap, 31_000, CFG)
        passed += verdict.allowed
    assert passed == CFG.probes


def test_probe_successes_close_and_an_error_reopens() -> None:
    snap, _ = admit(opened(0), 31_000, CFG)
    closed = record(snap, [Outcomes(31, CFG.probes, 0)], 31_500, CFG)
    assert closed.state is State.CLOSED and closed.buckets == {}
    reopened = record(snap, [Outcomes(31, 1, 1)], 31_500, CFG)
    assert reopened.state is State.OPEN and reopened.opened_at_ms == 31_500


def test_old_outcomes_leave_the_window() -> None:
    snap = record(Snapshot(), [Outcomes(0, 400, 100)], 0, CFG)
    snap = record(snap, [Outcomes(61, 200, 0)], 61_000, CFG)
    assert snap.state is State.CLOSED and sum(v[0] for v in snap.buckets.values()) == 200
