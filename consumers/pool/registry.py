"""Pool membership and commands in Redis: one hash of members per region, one
command list per worker."""

from __future__ import annotations

from typing import Literal

import msgspec
import redis

from consumers.pool.policy import Member


class _Entry(msgspec.Struct):
    state: str
    last_seen_ms: int
    last_busy_ms: int
    queue_ms: int = 0


class PoolRegistry:
    def __init__(self, url: str, prefix: str, region: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
        self.members_key = f"{prefix}:pool:{region}"
        self.prefix = prefix

    def _commands(self, worker_id: str) -> str:
        return f"{self.prefix}:pool:cmd:{worker_id}"

    def heartbeat(
        self, worker_id: str, state: str, now_ms: int, last_busy_ms: int, queue_ms: int = 0
    ) -> None:
        entry = msgspec.json.encode(_Entry(state, now_ms, last_busy_ms, queue_ms))
        self.client.hset(self.members_key, worker_id, entry)

    def leave(self, worker_id: str) -> None:
        self.client.hdel(self.members_key, worker_id)

    def members(self) -> list[Member]:
        raw: dict[bytes, bytes] = self.client.hgetall(self.members_key)  # type: ignore[assignment]
        out = []
        for worker_id, value in raw.items():
            e = msgspec.json.decode(value, type=_Entry)
            state: Literal["standby", "active"] = "active" if e.state == "active" else "standby"
            out.append(Member(worker_id.decode(), state, e.last_seen_ms, e.last_busy_ms, e.queue_ms))
        return out

    def send(self, worker_id: str, command: str) -> None:
        self.client.rpush(self._commands(worker_id), command)
        self.client.expire(self._commands(worker_id), 3600)

    def next_command(self, worker_id: str, timeout_s: float = 0.0) -> str | None:
        """The next command for this worker; waits up to ``timeout_s`` (0 = do not wait)."""
        if timeout_s > 0:
            found = self.client.blpop([self._commands(worker_id)], timeout=timeout_s)
            return _text(found[1]) if found else None
        value = self.client.lpop(self._commands(worker_id))
        return _text(value) if value is not None else None


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
