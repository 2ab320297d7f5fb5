"""What workers serve, as every stage sees it: the heartbeat each worker writes to Redis.

Workers write one entry per second into a hash per region; the warm-pool controller
reads it to promote and release, admission to refuse models nobody serves and to
route around regions with no worker, and the gateway to list ``/v1/models``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

import msgspec

DEFAULT_MODEL: Final = "smollm2-135m-instruct"
"""What `kinfer worker`, the demo and the gateway serve unless told otherwise."""

LIVE_FOR_MS: Final = 5_000
"""A worker silent for longer than this is taken as gone."""


class WorkerLoad(msgspec.Struct, frozen=True, kw_only=True):
    """An active worker's load over its last telemetry interval, in its heartbeat."""

    utilisation: float = 0.0
    """Share of wall time its model computed over the last telemetry interval (the tuner's signal)."""
    waiting_peak: int = 0
    """Most requests waiting to join its batch at once over that interval."""
    max_wait_ms: int = 0
    """Its batch wait now (the tuner may have shortened it)."""
    configured_max_wait_ms: int = 0
    """Its batch wait as started (what the tuner restores)."""
    p99_ms: int = 0
    """p99 end-to-end latency of what it answered over the last telemetry interval."""
    answers: int = 0
    """Answers it sent over the last telemetry interval."""
    error_ratio: float = 0.0
    """Share of those that were server errors (``internal``, ``unavailable``)."""


class WorkerHeartbeat(msgspec.Struct, frozen=True, kw_only=True):
    """One worker's entry in ``pool_key(prefix, region)``, under its worker id."""

    state: Literal["standby", "active", "drained"]
    """active: in the consumer group; standby: model loaded, waiting to be promoted; drained:
    taken out for its error rate and failed its self-test (``drained_reason`` says why)."""
    last_seen_ms: int
    """Unix ms of this heartbeat."""
    last_busy_ms: int = 0
    """When it last had work (active workers)."""
    queue_ms: int = 0
    """Longest a request waited for a batch slot on it recently (active workers)."""
    model: str = ""
    """The served model name; empty from workers older than this field."""
    load: WorkerLoad = msgspec.field(default_factory=WorkerLoad)
    """How busy it is and its batch wait (active workers): what the tuner reads."""
    drained_reason: str = ""
    """Why a drained worker stays out."""
    health_checks: int = 0
    """Self-tests it has run since it started: the pool knows a drain it sent was acted on
    once this count passes the one it saw when sending."""

    def live(self, now_ms: int) -> bool:
        return now_ms - self.last_seen_ms <= LIVE_FOR_MS


def pool_key(prefix: str, region: str) -> str:
    """Redis hash: worker id -> :class:`WorkerHeartbeat` JSON."""
    return f"{prefix}:pool:{region}"


def decode_heartbeats(raw: Mapping[bytes | str, bytes | str]) -> dict[str, WorkerHeartbeat]:
    """A region's hash as read by HGETALL; unreadable entries are skipped."""
    out = {}
    for worker_id, value in raw.items():
        try:
            name = worker_id.decode() if isinstance(worker_id, bytes) else worker_id
            out[name] = msgspec.json.decode(value, type=WorkerHeartbeat)
        except (msgspec.DecodeError, UnicodeDecodeError):
            continue
    return out


def served_models(heartbeats: dict[str, WorkerHeartbeat], now_ms: int) -> set[str]:
    """Models that live workers (active or standby) serve; a drained worker serves nothing."""
    return {hb.model for hb in heartbeats.values() if hb.model and hb.live(now_ms) and hb.state != "drained"}
