"""The tuner's first rule: a worker whose model computes under 60 % of the time while requests
wait for a batch holds them back too long, so its batch wait is halved (down to 0); once its
engine is saturated the wait is doubled back towards what it was started with. Pure; time
and each worker's tuning history passed in. Each step is rate-limited per worker, carries its
reason, and is reversible.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from kinfer.consumers.pool.policy import PoolConfig
from kinfer.schemas.serving import WorkerHeartbeat

_TUNE = re.compile(r"tune max_wait_ms=(\d{1,6})")


def tuning_command(max_wait_ms: int) -> str:
    """The pool command that sets a worker's batch wait (``PoolRegistry.send``)."""
    return f"tune max_wait_ms={max_wait_ms}"


def parse_tuning(command: str) -> int | None:
    """The batch wait a tuning command sets, or None for any other command."""
    found = _TUNE.fullmatch(command)
    return int(found.group(1)) if found else None


@dataclass(frozen=True)
class Tuning:
    kind: Literal["shorten_wait", "restore_wait"]
    worker_id: str
    max_wait_ms: int
    reason: str


@dataclass
class Seen:
    """What the tuner remembers of one worker."""

    low_since_ms: int | None = None
    """Since when its utilisation has been low with requests waiting (None: it is not)."""
    changed_ms: int = -(2**62)
    """When its wait was last changed."""
    sent_wait_ms: int | None = None
    """The wait last sent to it, until its heartbeat shows it."""


def tune(
    beats: dict[str, WorkerHeartbeat], seen: dict[str, Seen], now_ms: int, cfg: PoolConfig
) -> list[Tuning]:
    """The changes due now; updates ``seen``."""
    out = []
    for worker_id, beat in sorted(beats.items()):
        if beat.state != "active" or not beat.live(now_ms):
            continue
        mine = seen.setdefault(worker_id, Seen())
        if mine.sent_wait_ms is not None:
            # Judge a change only once the worker runs with it (heartbeats lag a command).
            if beat.load.max_wait_ms != mine.sent_wait_ms and now_ms - mine.changed_ms < cfg.dead_after_ms:
                continue
            mine.sent_wait_ms = None
        low = beat.load.utilisation < cfg.tune_low_utilisation and beat.load.waiting_peak > 0
        if not low:
            mine.low_since_ms = None
        elif mine.low_since_ms is None:
            mine.low_since_ms = now_ms
        if now_ms - mine.changed_ms < cfg.tune_cooldown_ms:
            continue
        change = _change(beat, mine, now_ms, cfg)
        if change is not None:
            # A new streak must be seen at the new setting before the next step.
            mine.changed_ms, mine.sent_wait_ms, mine.low_since_ms = now_ms, change[1], None
            out.append(Tuning(change[0], worker_id, change[1], change[2]))
    return out


def _change(
    beat: WorkerHeartbeat, mine: Seen, now_ms: int, cfg: PoolConfig
) -> tuple[Literal["shorten_wait", "restore_wait"], int, str] | None:
    util = f"utilisation {beat.load.utilisation:.0%}"
    low_for = now_ms - mine.low_since_ms if mine.low_since_ms is not None else -1
    if low_for >= cfg.tune_sustain_ms and beat.load.max_wait_ms > 0:
        limit = f"{cfg.tune_low_utilisation:.0%}"
        why = f"{util} < {limit} with up to {beat.load.waiting_peak} waiting for {low_for // 1000} s"
        return "shorten_wait", beat.load.max_wait_ms // 2, why
    # Only a saturated engine gets its wait back (fuller first batches pay there); nothing
    # waiting is no reason: a shortened wait is what keeps requests from waiting.
    saturated = beat.load.utilisation > cfg.tune_high_utilisation
    if mine.low_since_ms is None and saturated and beat.load.max_wait_ms < beat.load.configured_max_wait_ms:
        restored = min(beat.load.configured_max_wait_ms, max(1, beat.load.max_wait_ms * 2))
        why = f"{util} > {cfg.tune_high_utilisation:.0%}: back towards {beat.load.configured_max_wait_ms} ms"
        return "restore_wait", restored, why
    return None


@dataclass(frozen=True)
class Drain:
    """Take a worker out of its group for a health check (its error rate is too high)."""

    worker_id: str
    reason: str


DRAIN = "drain"
"""The pool command: leave the group, run a self-test, rejoin if it passes or stay out."""


@dataclass(frozen=True)
class DrainSent:
    at_ms: int
    health_checks: int
    """The worker's self-test count when it was sent: it has acted on it once this grows."""


def unhealthy(
    beats: dict[str, WorkerHeartbeat], sent: dict[str, DrainSent], now_ms: int, cfg: PoolConfig
) -> list[Drain]:
    """The design's third rule: an active worker whose server errors pass
    ``health_error_ratio`` of at least ``health_min_answers`` answers in its last interval is
    drained and health-checked, at most once per ``tune_cooldown_ms``; updates ``sent``.

    Until the worker has run the self-test of a drain (or stayed silent on it for
    ``dead_after_ms``), its heartbeats predate it: the drain is not sent again."""
    out = []
    for worker_id, beat in sorted(beats.items()):
        if beat.state != "active" or not beat.live(now_ms) or beat.load.answers < cfg.health_min_answers:
            continue
        if beat.load.error_ratio <= cfg.health_error_ratio:
            continue
        last = sent.get(worker_id)
        if last is not None:
            on_its_way = beat.health_checks <= last.health_checks
            if on_its_way and now_ms - last.at_ms < cfg.dead_after_ms:
                continue
            if now_ms - last.at_ms < cfg.tune_cooldown_ms:
                continue
        sent[worker_id] = DrainSent(now_ms, beat.health_checks)
        limit = f"{cfg.health_error_ratio:.0%}"
        why = f"server errors {beat.load.error_ratio:.0%} of {beat.load.answers} answers > {limit}"
        out.append(Drain(worker_id, why))
    return out
