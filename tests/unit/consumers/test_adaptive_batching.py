"""Adaptive batching with a fake clock: the wait and the budget follow the measured arrival
rate and service time, within the configured caps; fixed batching never moves."""

from __future__ import annotations

from kinfer.consumers.batching.adaptive import AdaptiveBatching, FixedBatching, batch_policy


def fed(
    gap_ms: float, step_ms: float, service_ms: float, tokens: int = 100, n: int = 200
) -> AdaptiveBatching:
    policy = AdaptiveBatching()
    for i in range(n):
        policy.arrived(i * gap_ms, tokens)
        policy.stepped(step_ms)
        policy.finished(service_ms)
    return policy


def test_nothing_measured_yet_means_no_wait_and_the_configured_budget() -> None:
    policy = AdaptiveBatching()
    assert policy.wait_ms(50) == 0 and policy.budget(4096) == 4096


def test_light_load_waits_for_nobody() -> None:
    policy = fed(gap_ms=500, step_ms=20, service_ms=200)  # a request every 500 ms, steps of 20
    assert policy.wait_ms(50) == 0


def test_two_or_more_arrivals_per_step_wait_about_one_gap_within_the_cap() -> None:
    assert fed(gap_ms=8, step_ms=20, service_ms=400).wait_ms(50) == 8
    assert fed(gap_ms=8, step_ms=20, service_ms=400).wait_ms(5) == 5  # the configured wait caps it
    assert fed(gap_ms=8, step_ms=20, service_ms=400).wait_ms(0) == 0  # and 0 turns waiting off
    assert fed(gap_ms=12, step_ms=20, service_ms=400).wait_ms(50) == 0  # under two per step: no wait


def test_the_budget_holds_what_is_in_service_with_headroom_between_floor_and_cap() -> None:
    # 1 arrival per 10 ms, each in service 400 ms: ~40 in service x 100 tokens x 1.5
    assert fed(gap_ms=10, step_ms=20, service_ms=400).budget(16_384) == 6000
    assert fed(gap_ms=10, step_ms=20, service_ms=400).budget(4096) == 4096  # capped
    assert fed(gap_ms=1000, step_ms=20, service_ms=400).budget(4096) == 512  # floor
    assert fed(gap_ms=1000, step_ms=20, service_ms=400, tokens=300).budget(4096) == 1200  # 4 requests


def test_a_change_of_load_is_followed() -> None:
    policy = fed(gap_ms=500, step_ms=20, service_ms=200)
    assert policy.wait_ms(50) == 0
    for i in range(100):
        policy.arrived(100_000 + i * 5, 100)
        policy.stepped(20)
    assert 0 < policy.wait_ms(50) <= 10


def test_fixed_batching_is_the_configuration() -> None:
    policy = batch_policy("fixed")
    assert isinstance(policy, FixedBatching)
    policy.arrived(0, 100)
    assert policy.wait_ms(37) == 37 and policy.budget(999) == 999
    assert isinstance(batch_policy("adaptive"), AdaptiveBatching)
