"""A worker's membership of the warm pool: heartbeats in Redis (its state, model, how
busy it is) and the pool controller's commands (promote, release)."""

from __future__ import annotations

import time
from typing import Literal

from kinfer.consumers.pool.registry import PoolRegistry
from kinfer.consumers.redis_gate import RedisGate
from kinfer.schemas.serving import WorkerHeartbeat, WorkerLoad

State = Literal["standby", "active", "drained"]


class PoolMembership:
    def __init__(self, registry: PoolRegistry | None, gate: RedisGate, worker_id: str, model: str) -> None:
        self.registry = registry
        self.gate = gate
        self.worker_id = worker_id
        self.model = model
        self._last_beat = float("-inf")
        self._last_state = ""
        self.health_checks = 0
        """Self-tests run after a drain, reported in every heartbeat."""

    def due(self, state: State, wait_s: float = 0.0) -> bool:
        """Whether :meth:`tick` would send a heartbeat now: a second after the last one, at
        once when waiting or when the state changed. What the heartbeat reports (and resets,
        like the longest queue wait since the last one) is worth computing only then."""
        if self.registry is None:
            return False
        fresh = time.monotonic() - self._last_beat < 1.0
        return not (wait_s == 0.0 and fresh and state == self._last_state)

    def tick(
        self,
        state: State,
        now_ms: int,
        *,
        last_busy_ms: int = 0,
        queue_ms: int = 0,
        wait_s: float = 0.0,
        load: WorkerLoad | None = None,
        drained_reason: str = "",
    ) -> str | None:
        """Heartbeat (at most once a second unless waiting or the state just changed: a
        promotion is visible at once) and take the next command, waiting up to ``wait_s``."""
        registry = self.registry
        if registry is None or not self.due(state, wait_s):
            return None
        self._last_beat, self._last_state = time.monotonic(), state
        beat = WorkerHeartbeat(
            state=state,
            last_seen_ms=now_ms,
            last_busy_ms=last_busy_ms,
            queue_ms=queue_ms,
            model=self.model,
            load=load or WorkerLoad(),
            drained_reason=drained_reason,
            health_checks=self.health_checks,
        )

        def tick() -> str | None:
            registry.heartbeat(self.worker_id, beat)
            return registry.next_command(self.worker_id, wait_s)

        command = self.gate.call(tick, None)
        if command is None and wait_s and not self.gate.up:
            time.sleep(wait_s)  # Redis away: a standby waits instead of spinning
        return command

    def leave(self) -> None:
        registry = self.registry
        if registry is not None:
            self.gate.call(lambda: registry.leave(self.worker_id), None)
