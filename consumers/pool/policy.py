"""When to promote a standby worker and when to release an idle one. Pure; time passed in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from kinfer.schemas.serving import LIVE_FOR_MS


@dataclass(frozen=True)
class Member:
    worker_id: str
    state: Literal["standby", "active", "drained"]
    last_seen_ms: int
    """Heartbeat; members silent for longer than ``PoolConfig.dead_after_ms`` are ignored."""
    last_busy_ms: int
    """When it last had work (active members)."""
    queue_ms: int = 0
    """Longest a request waited for a batch slot on this worker recently (active members)."""
    p99_ms: int = 0
    """p99 end-to-end latency of its recent answers (active members)."""


class PoolConfig(BaseModel):
    """The warm-pool controller (`kinfer pool`)."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True, extra="forbid")

    lag_threshold: int = Field(default=100, ge=1)
    """Unprocessed dispatch records (summed over partitions) that call for more workers."""
    queue_delay_ms: int = Field(default=2_000, ge=1)
    """A worker whose requests wait this long for a batch slot calls for more workers."""
    p99_promote_ms: int = Field(default=1_000, ge=1)
    """A worker whose answers' p99 end-to-end latency reaches this calls for more warm workers
    (the design's tuning rule: p99 above 1 s)."""
    idle_release_ms: int = Field(default=5 * 60_000, ge=1)
    """An active worker with no work for this long is released back to standby."""
    min_active: int = Field(default=1, ge=0)
    """Never release below this many active workers."""
    promote_cooldown_ms: int = Field(default=10_000, ge=0)
    """After a promotion, wait this long for it to take effect before promoting again."""
    dead_after_ms: int = Field(default=LIVE_FOR_MS, ge=1)
    """Members silent for longer are ignored."""
    interval_ms: int = Field(default=1000, ge=10)
    """How often the controller looks at lag and members."""
    tune_low_utilisation: float = Field(default=0.60, gt=0, lt=1)
    """A worker computing less than this share of the time while requests wait for a batch gets
    its batch wait halved (the design's tuning rule: utilisation under 60 %)."""
    tune_high_utilisation: float = Field(default=0.85, gt=0, le=1)
    """A worker computing more than this gets a shortened batch wait doubled back, up to its own."""
    tune_sustain_ms: int = Field(default=30_000, ge=0)
    """How long low utilisation with waiting requests must last before the wait is shortened."""
    tune_cooldown_ms: int = Field(default=30_000, ge=0)
    """Least time between two changes of one worker's batch wait (or two drains of it)."""
    health_error_ratio: float = Field(default=0.02, gt=0, lt=1)
    """A worker whose answers are server errors more often than this is drained and
    health-checked (the design's tuning rule: error rate above 2 %)."""
    health_min_answers: int = Field(default=20, ge=1)
    """Answers in a worker's last telemetry interval before its error rate is judged."""


@dataclass(frozen=True)
class Action:
    kind: Literal["promote", "release"]
    worker_id: str
    reason: str


def decide(
    members: list[Member], lag: int, now_ms: int, last_promotion_ms: int, cfg: PoolConfig
) -> list[Action]:
    alive = [m for m in members if now_ms - m.last_seen_ms <= cfg.dead_after_ms]
    active = [m for m in alive if m.state == "active"]
    standby = sorted((m for m in alive if m.state == "standby"), key=lambda m: m.worker_id)
    delay = max((m.queue_ms for m in active), default=0)
    slowest = max((m.p99_ms for m in active), default=0)
    # No active worker at all: any waiting record calls for one (scale from zero).
    needs_capacity = (
        lag >= cfg.lag_threshold
        or delay >= cfg.queue_delay_ms
        or slowest >= cfg.p99_promote_ms
        or (not active and lag > 0)
    )
    if needs_capacity and standby and now_ms - last_promotion_ms >= cfg.promote_cooldown_ms:
        if not active:
            why = "no active worker"
        elif lag >= cfg.lag_threshold:
            why = f"lag {lag} >= {cfg.lag_threshold}"
        elif slowest >= cfg.p99_promote_ms:
            why = f"p99 latency {slowest} ms >= {cfg.p99_promote_ms} ms"
        else:
            why = f"queue delay {delay} ms >= {cfg.queue_delay_ms} ms"
        return [Action("promote", standby[0].worker_id, why)]
    if needs_capacity:
        return []
    idle = sorted(
        (m for m in active if now_ms - m.last_busy_ms >= cfg.idle_release_ms), key=lambda m: m.last_busy_ms
    )
    releasable = max(0, len(active) - cfg.min_active)
    return [
        Action("release", m.worker_id, f"idle {(now_ms - m.last_busy_ms) // 1000} s")
        for m in idle[:releasable]
    ]
