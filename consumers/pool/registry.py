"""Pool membership and commands in Redis: one hash of members per region (the heartbeats
of ``schemas.serving``), one command list per worker."""

from __future__ import annotations

import msgspec
import redis

from kinfer.consumers.pool.policy import Member
from kinfer.schemas.redis_bounds import bounded
from kinfer.schemas.serving import WorkerHeartbeat, decode_heartbeats, pool_key

BLOCKING_S = 2.0
"""A standby's wait for its next command (BLPOP, at most a second) plus a second to answer."""


class PoolRegistry:
    def __init__(self, url: str, prefix: str, region: str, timeout_s: float = BLOCKING_S) -> None:
        """``timeout_s``: each call's bound (a worker, which beats from its serving loop,
        passes its own short one: Redis away then costs it half a second, not two)."""
        self.client = redis.Redis.from_url(url, **bounded(timeout_s))
        self.waiting = redis.Redis.from_url(url, **bounded(BLOCKING_S))
        """Only for a standby's BLPOP, which waits up to a second by design."""
        self.members_key = pool_key(prefix, region)
        self.prefix = prefix

    def _commands(self, worker_id: str) -> str:
        return f"{self.prefix}:pool:cmd:{worker_id}"

    def heartbeat(self, worker_id: str, beat: WorkerHeartbeat) -> None:
        self.client.hset(self.members_key, worker_id, msgspec.json.encode(beat))

    def leave(self, worker_id: str) -> None:
        self.client.hdel(self.members_key, worker_id)

    def heartbeats(self) -> dict[str, WorkerHeartbeat]:
        return decode_heartbeats(self.client.hgetall(self.members_key))

    def members(self, beats: dict[str, WorkerHeartbeat] | None = None) -> list[Member]:
        beats = self.heartbeats() if beats is None else beats
        return [
            Member(
                worker_id, beat.state, beat.last_seen_ms, beat.last_busy_ms, beat.queue_ms, beat.load.p99_ms
            )
            for worker_id, beat in beats.items()
        ]

    def send(self, worker_id: str, command: str) -> None:
        self.client.rpush(self._commands(worker_id), command)
        self.client.expire(self._commands(worker_id), 3600)

    def next_command(self, worker_id: str, timeout_s: float = 0.0) -> str | None:
        """The next command for this worker; waits up to ``timeout_s`` (0 = do not wait)."""
        if timeout_s > 0:
            found = self.waiting.blpop([self._commands(worker_id)], timeout=min(timeout_s, BLOCKING_S - 1))
            return _text(found[1]) if found else None
        value = self.client.lpop(self._commands(worker_id))
        return _text(value) if value is not None else None


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
