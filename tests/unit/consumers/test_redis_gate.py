"""The worker's Redis gate: one failure, then no calls until the retry time, then back."""

from __future__ import annotations

import threading
import time

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


def test_with_a_probe_the_loop_never_calls_a_redis_that_is_away() -> None:
    now = [0.0]
    probed = threading.Event()
    answering = [False]

    def probe() -> bool:
        probed.set()
        if not answering[0]:
            raise redis.TimeoutError("hung")
        return True

    gate = RedisGate(retry_after_s=1.0, clock=lambda: now[0], probe=probe)

    def hung() -> str:
        raise redis.TimeoutError("Timeout reading from socket")

    assert gate.call(hung, "fallback") == "fallback" and not gate.up
    now[0] = 1.5
    assert gate.call(lambda: "value", "fallback") == "fallback"  # the probe's thread tries instead
    assert probed.wait(5)
    answering[0] = True
    deadline = time.monotonic() + 5
    while gate.window.trying:  # the failed probe has not been recorded yet
        assert time.monotonic() < deadline
        time.sleep(0.01)
    now[0] = 3.0
    assert gate.call(lambda: "value", "fallback") == "fallback"
    while not gate.up:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert gate.call(lambda: "value", "fallback") == "value"
