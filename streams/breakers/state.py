"""The breaker state machine, as pure functions of a snapshot and the time.

closed --(error rate > threshold over >= min_calls in the window)--> open
open --(open_s passed)--> half_open: ``probes`` requests may pass
half_open --(an error)--> open;  --(``probes`` successes)--> closed

Window size: with ``min_calls = 500`` and a 5 % threshold, a true 3 % error
rate trips 0.55 % of evaluations and a true 10 % trips 99.997 %
(exact binomial figures in tests/unit/streams/test_breaker.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import msgspec


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerConfig:
    window_s: int = 60
    """Outcomes older than this no longer count."""
    min_calls: int = 500
    """No verdict on fewer calls than this in the window."""
    error_rate: float = 0.05
    """Opens when errors / calls passes this."""
    open_s: float = 30.0
    """How long it rejects before probing."""
    probes: int = 10
    """Requests let through while half-open; all must succeed to close."""


class Snapshot(msgspec.Struct):
    """One breaker's shared state (stored as JSON in Redis)."""

    state: State = State.CLOSED
    opened_at_ms: int = 0
    probes_left: int = 0
    probes_ok: int = 0
    probing_since_ms: int = 0
    """When half-open began: probes given out but never answered are handed out again
    after ``open_s``, so a lost probe cannot leave the breaker stuck."""
    buckets: dict[int, list[int]] = msgspec.field(default_factory=dict)
    """Second -> [calls, errors]."""


@dataclass(frozen=True)
class Outcomes:
    """Counts of finished requests in one second."""

    second: int
    calls: int
    errors: int


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after_ms: int = 0
    probe: bool = False
    """The request was let through as a half-open probe."""


def record(snap: Snapshot, outcomes: list[Outcomes], now_ms: int, cfg: BreakerConfig) -> Snapshot:
    """Fold finished requests into the window and take the transitions they cause."""
    snap = _expire(snap, now_ms, cfg)
    buckets = {k: list(v) for k, v in snap.buckets.items()}
    errors = calls = 0
    for o in outcomes:
        slot = buckets.setdefault(o.second, [0, 0])
        slot[0] += o.calls
        slot[1] += o.errors
        calls += o.calls
        errors += o.errors
    snap = msgspec.structs.replace(snap, buckets=_trim(buckets, now_ms, cfg))
    if snap.state is State.HALF_OPEN:
        if errors:
            return _open(snap, now_ms)
        if snap.probes_ok + calls >= cfg.probes:
            return Snapshot()  # closed, with a fresh window
        return msgspec.structs.replace(snap, probes_ok=snap.probes_ok + calls)
    if snap.state is State.CLOSED and _tripped(snap.buckets, cfg):
        return _open(snap, now_ms)
    return snap


def admit(snap: Snapshot, now_ms: int, cfg: BreakerConfig) -> tuple[Snapshot, Verdict]:
    """May a new request pass? Half-open hands out at most ``probes`` passes."""
    snap = _expire(snap, now_ms, cfg)
    if snap.state is State.CLOSED:
        return snap, Verdict(True)
    if snap.state is State.OPEN:
        return snap, Verdict(False, max(1, snap.opened_at_ms + int(cfg.open_s * 1000) - now_ms))
    if snap.probes_left > 0:
        return msgspec.structs.replace(snap, probes_left=snap.probes_left - 1), Verdict(True, probe=True)
    return snap, Verdict(False, 1000)  # probes are out; their outcomes decide soon


def error_rate(snap: Snapshot) -> tuple[int, int]:
    """(calls, errors) in the window."""
    calls = sum(v[0] for v in snap.buckets.values())
    return calls, sum(v[1] for v in snap.buckets.values())


def _tripped(buckets: dict[int, list[int]], cfg: BreakerConfig) -> bool:
    calls = sum(v[0] for v in buckets.values())
    errors = sum(v[1] for v in buckets.values())
    return calls >= cfg.min_calls and errors > cfg.error_rate * calls


def _open(snap: Snapshot, now_ms: int) -> Snapshot:
    return Snapshot(state=State.OPEN, opened_at_ms=now_ms, buckets=snap.buckets)


def _expire(snap: Snapshot, now_ms: int, cfg: BreakerConfig) -> Snapshot:
    """open -> half_open once open_s has passed; stale probes are handed out again."""
    if snap.state is State.OPEN and now_ms >= snap.opened_at_ms + cfg.open_s * 1000:
        return Snapshot(
            state=State.HALF_OPEN,
            opened_at_ms=snap.opened_at_ms,
            probes_left=cfg.probes,
            probing_since_ms=now_ms,
        )
    if snap.state is State.HALF_OPEN and now_ms >= snap.probing_since_ms + cfg.open_s * 1000:
        return msgspec.structs.replace(snap, probes_left=cfg.probes, probes_ok=0, probing_since_ms=now_ms)
    return snap


def _trim(buckets: dict[int, list[int]], now_ms: int, cfg: BreakerConfig) -> dict[int, list[int]]:
    oldest = now_ms // 1000 - cfg.window_s
    return {k: v for k, v in buckets.items() if k > oldest}
