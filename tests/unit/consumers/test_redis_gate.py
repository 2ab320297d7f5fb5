"""The worker's Redis gate: one failure, then no calls until the retry time, then back."""

from __future__ import annotations

import redis

from kinfer.consumers.redis_gate import RedisGate


def test_an_outage_costs_one_call_per_interval_and_recovery_is_seen() -> None:
    now = [0.0]
    gate = RedisGate(retry_after_s=1.0, clock=lambda: now[0])
    calls: list[str] = []

    def failing() -> str:
        calls.append("try")
        raise redis.ConnectionError("refused")

    assert gate.call(failing, "fallback") == "fallback" and not gate.up
    for _ in range(100):  # a hundred records within the interval: none calls Redis
        assert gate.call(failing, "fallback") == "fallback"
    assert calls == ["try"]
    now[0] = 1.5
    assert gate.call(lambda: "value", "fallback") == "value" and gate.up
