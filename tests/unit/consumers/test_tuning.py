"""The tuner's batch-wait rule, with a fake clock: when it shortens, when it restores, how
often, and that it says why."""

from __future__ import annotations

import itertools

from kinfer.consumers.pool.policy import PoolConfig
from kinfer.consumers.pool.tuning import DrainSent, Seen, parse_tuning, tune, tuning_command, unhealthy
from kinfer.schemas.serving import WorkerHeartbeat, WorkerLoad

CFG = PoolConfig(tune_sustain_ms=10_000, tune_cooldown_ms=5_000)


def beat(
    now_ms: int, utilisation: float, waiting: int, wait_ms: int, configured: int = 40
) -> WorkerHeartbeat:
    load = WorkerLoad(
        utilisation=utilisation, waiting_peak=waiting, max_wait_ms=wait_ms, configured_max_wait_ms=configured
    )
    return WorkerHeartbeat(state="active", last_seen_ms=now_ms, load=load)


def test_low_utilisation_with_waiting_work_halves_the_wait_when_sustained() -> None:
    seen: dict[str, Seen] = {}
    assert tune({"w": beat(0, 0.3, 2, 40)}, seen, 0, CFG) == []  # not yet sustained
    assert tune({"w": beat(9_000, 0.3, 2, 40)}, seen, 9_000, CFG) == []
    (first,) = tune({"w": beat(10_000, 0.3, 2, 40)}, seen, 10_000, CFG)
    assert (first.kind, first.worker_id, first.max_wait_ms) == ("shorten_wait", "w", 20)
    assert first.reason == "utilisation 30% < 60% with up to 2 waiting for 10 s"
    # The worker's heartbeat still shows the old wait: nothing is sent twice.
    assert tune({"w": beat(12_000, 0.3, 2, 40)}, seen, 12_000, CFG) == []
    # Each later step needs a new streak at the new setting (and the cooldown).
    changes, wait = [(10_000, 20)], 20
    for t in range(12_000, 120_000, 1_000):
        for change in tune({"w": beat(t, 0.3, 2, wait)}, seen, t, CFG):
            changes.append((t, change.max_wait_ms))
            wait = change.max_wait_ms
    assert [w for _, w in changes] == [20, 10, 5, 2, 1, 0]  # and not below
    assert all(later - earlier >= 10_000 for (earlier, _), (later, _) in itertools.pairwise(changes))


def test_nothing_happens_without_waiting_work_or_with_a_busy_engine() -> None:
    seen: dict[str, Seen] = {}
    for t in range(0, 60_000, 5_000):
        assert tune({"idle": beat(t, 0.1, 0, 40), "busy": beat(t, 0.75, 3, 40)}, seen, t, CFG) == []


def test_the_low_streak_restarts_when_the_condition_breaks() -> None:
    seen: dict[str, Seen] = {}
    tune({"w": beat(0, 0.3, 2, 40)}, seen, 0, CFG)
    tune({"w": beat(8_000, 0.3, 0, 40)}, seen, 8_000, CFG)  # nothing waited this interval
    assert tune({"w": beat(12_000, 0.3, 2, 40)}, seen, 12_000, CFG) == []
    assert tune({"w": beat(21_000, 0.3, 2, 40)}, seen, 21_000, CFG) == []
    assert [c.max_wait_ms for c in tune({"w": beat(22_000, 0.3, 2, 40)}, seen, 22_000, CFG)] == [20]


def test_a_saturated_engine_gets_its_wait_back_step_by_step_up_to_its_own() -> None:
    seen: dict[str, Seen] = {}
    waits = [0]
    for t in range(0, 60_000, 5_000):
        for change in tune({"w": beat(t, 0.95, 4, waits[-1])}, seen, t, CFG):
            assert change.kind == "restore_wait" and "utilisation 95% > 85%" in change.reason
            waits.append(change.max_wait_ms)
    assert waits == [0, 1, 2, 4, 8, 16, 32, 40]


def test_standby_and_silent_workers_are_left_alone() -> None:
    seen: dict[str, Seen] = {}
    standby = WorkerHeartbeat(
        state="standby", last_seen_ms=0, load=WorkerLoad(waiting_peak=5, max_wait_ms=40)
    )
    for t in range(0, 60_000, 5_000):
        assert tune({"s": standby, "gone": beat(0, 0.1, 5, 40)}, seen, t, CFG) == []


def test_the_command_round_trips_and_other_commands_are_not_tunings() -> None:
    assert parse_tuning(tuning_command(25)) == 25
    assert parse_tuning("promote") is None and parse_tuning("tune max_wait_ms=-1") is None


def sick(now_ms: int, answers: int, error_ratio: float, health_checks: int = 0) -> WorkerHeartbeat:
    return WorkerHeartbeat(
        state="active",
        last_seen_ms=now_ms,
        load=WorkerLoad(answers=answers, error_ratio=error_ratio),
        health_checks=health_checks,
    )


def test_a_worker_past_two_percent_server_errors_is_drained_once_per_cooldown() -> None:
    sent: dict[str, DrainSent] = {}
    beats = {"bad": sick(0, 50, 0.10), "ok": sick(0, 50, 0.02), "quiet": sick(0, 5, 1.0)}
    (drain,) = unhealthy(beats, sent, 0, CFG)
    assert (drain.worker_id, drain.reason) == ("bad", "server errors 10% of 50 answers > 2%")
    # It ran the self-test, passed, rejoined and fails again: judged again after the cooldown.
    assert unhealthy({"bad": sick(2_000, 50, 0.10, health_checks=1)}, sent, 2_000, CFG) == []
    again = unhealthy({"bad": sick(5_000, 50, 0.1, health_checks=1)}, sent, 5_000, CFG)
    assert [d.worker_id for d in again] == ["bad"]
    out = WorkerHeartbeat(state="drained", last_seen_ms=9_000, load=WorkerLoad(answers=50, error_ratio=1.0))
    assert unhealthy({"bad": out}, sent, 20_000, CFG) == []  # already out


def test_a_drain_on_its_way_is_not_sent_again_until_the_worker_is_silent_on_it() -> None:
    """Heartbeats written before the worker took the drain still show its errors; sending it
    again would drain a worker that passed its self-test a second time."""
    cfg = PoolConfig(tune_cooldown_ms=1_000, dead_after_ms=5_000)
    sent: dict[str, DrainSent] = {}
    assert len(unhealthy({"bad": sick(0, 50, 0.5)}, sent, 0, cfg)) == 1
    for t in range(1_000, 5_000, 500):
        assert unhealthy({"bad": sick(t, 50, 0.5)}, sent, t, cfg) == []
    assert len(unhealthy({"bad": sick(5_000, 50, 0.5)}, sent, 5_000, cfg)) == 1  # lost: sent again
