"""Pool membership: heartbeats at most once a second, at once on a change of state."""

from __future__ import annotations

from kinfer.consumers.membership import PoolMembership
from kinfer.consumers.redis_gate import RedisGate
from kinfer.schemas.serving import WorkerHeartbeat


class FakeRegistry:
    def __init__(self) -> None:
        self.beats: list[WorkerHeartbeat] = []
        self.commands = ["promote"]
        self.left = False

    def heartbeat(self, _worker_id: str, beat: WorkerHeartbeat) -> None:
        self.beats.append(beat)

    def next_command(self, _worker_id: str, _timeout_s: float = 0.0) -> str | None:
        return self.commands.pop(0) if self.commands else None

    def leave(self, _worker_id: str) -> None:
        self.left = True


def test_a_promotion_is_heartbeated_at_once_and_repeats_are_throttled() -> None:
    registry = FakeRegistry()
    member = PoolMembership(registry, RedisGate(), "w1", "m")  # type: ignore[arg-type]
    assert member.tick("standby", 1, wait_s=1.0) == "promote"
    assert member.tick("active", 2) is None  # a new state: sent although within the second
    assert member.tick("active", 3) is None  # the same state within the second: not sent
    assert [(b.state, b.model) for b in registry.beats] == [("standby", "m"), ("active", "m")]
    member.leave()
    assert registry.left


def test_due_says_when_a_heartbeat_would_go_out() -> None:
    """The worker computes (and resets) what a heartbeat reports only when one is due: the
    longest queue wait since the last heartbeat once was reset on every loop turn."""
    member = PoolMembership(FakeRegistry(), RedisGate(), "w1", "m")  # type: ignore[arg-type]
    assert member.due("active")
    member.tick("active", 1)
    assert not member.due("active")  # within the second
    assert member.due("standby") and member.due("active", wait_s=1.0)
    assert not PoolMembership(None, RedisGate(), "w1", "m").due("active")  # no registry, no beats
