"""Breaker snapshots shared through Redis, updated by compare-and-set.

The transition logic stays in ``state.py`` (pure Python); Redis only stores the
snapshot, and WATCH/MULTI makes each read-modify-write atomic across admission
workers. Workers keep a local view refreshed every ``refresh_s`` (default
250 ms), so all of them see the same state within a second.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import msgspec
from redis.asyncio import Redis
from redis.exceptions import WatchError

from kinfer.streams.breakers.state import BreakerConfig, Outcomes, Snapshot, State, Verdict, admit, record

T = TypeVar("T")
_decoder = msgspec.json.Decoder(Snapshot)


class BreakerStore:
    def __init__(self, client: Redis, prefix: str, cfg: BreakerConfig) -> None:
        self.client = client
        self.prefix = prefix
        self.cfg = cfg
        self.index = f"{prefix}:breakers"

    def key(self, name: str) -> str:
        return f"{self.prefix}:breaker:{name}"

    async def record(self, name: str, outcomes: list[Outcomes], now_ms: int) -> Snapshot:
        return await self._update(name, lambda s: (record(s, outcomes, now_ms, self.cfg),) * 2)

    async def admit(self, name: str, now_ms: int) -> Verdict:
        return await self._update(name, lambda s: admit(s, now_ms, self.cfg))

    async def load_all(self) -> dict[str, Snapshot]:
        members = await self.client.smembers(self.index)
        names = sorted(m.decode() if isinstance(m, bytes) else m for m in members)
        if not names:
            return {}
        values = await self.client.mget([self.key(n) for n in names])
        return {n: _decoder.decode(v) if v else Snapshot() for n, v in zip(names, values, strict=True)}

    async def _update(self, name: str, step: Callable[[Snapshot], tuple[Snapshot, T]]) -> T:
        key = self.key(name)
        async with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    snap = _decoder.decode(raw) if raw else Snapshot()
                    new, result = step(snap)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(key, msgspec.json.encode(new), ex=24 * 3600)
                    pipe.sadd(self.index, name)
                    await pipe.execute()
                    return result
                except WatchError:
                    continue


def breaker_name(region: str, model: str) -> str:
    return f"{region}/{model}"


def is_open_now(snap: Snapshot | None) -> bool:
    """Local view: definitely rejecting, without asking Redis for a probe."""
    return snap is not None and snap.state is State.OPEN
