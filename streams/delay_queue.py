"""The delay queue: paid-tier requests over their limit wait here, in Redis.

Per tenant a FIFO list keeps arrival order; a sorted set says when each tenant
should be tried next. Any admission worker may pump it: a tenant is claimed with
a short lease (one Lua call), so one worker at a time re-admits its requests.
Entries leave the list only after they were forwarded or answered, so a worker
that dies mid-pump loses nothing (the next one may forward an entry twice;
clients ignore a second answer for the same request id).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import msgspec
from redis.asyncio import Redis

_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local claimed = {}
for _, tenant in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', tonumber(ARGV[1]) + tonumber(ARGV[2]), tenant)
  table.insert(claimed, tenant)
end
return claimed
"""


class QueuedRequest(msgspec.Struct, frozen=True):
    value: bytes
    """The request record's value, unchanged."""
    headers: list[tuple[str, bytes]]
    enqueued_ms: int


@dataclass(frozen=True)
class PumpResult:
    """What the handler did with the head of a tenant's queue."""

    done: bool
    """Forwarded or answered: remove it and look at the next."""
    retry_after_ms: int = 0
    """Not yet: try this tenant again after this long."""


Handler = Callable[[str, QueuedRequest], Awaitable[PumpResult]]

_decoder = msgspec.json.Decoder(QueuedRequest)


class DelayQueue:
    def __init__(self, client: Redis, prefix: str, *, lease_ms: int = 5_000) -> None:
        self.client = client
        self.prefix = prefix
        self.lease_ms = lease_ms
        self.due_key = f"{prefix}:delay:due"
        self._claim = client.register_script(_CLAIM)

    def _list(self, tenant: str) -> str:
        return f"{self.prefix}:delay:q:{tenant}"

    async def enqueue(self, tenant: str, item: QueuedRequest, retry_after_ms: int, now_ms: int) -> int:
        """Append in arrival order; returns the tenant's queue length."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.rpush(self._list(tenant), msgspec.json.encode(item))
            pipe.zadd(self.due_key, {tenant: now_ms + retry_after_ms}, nx=True)
            length, _ = await pipe.execute()
        return int(length)

    async def waiting(self, tenant: str) -> int:
        """Requests this tenant has queued: new ones must queue behind them."""
        return int(await self.client.llen(self._list(tenant)))

    async def pump(
        self, handle: Handler, now_ms: int, max_tenants: int = 32, band: Callable[[str], int] = lambda _: 0
    ) -> int:
        """Offer due tenants' queue heads to ``handle``, tenants of a higher ``band`` (their
        tier's priority) first; returns how many it finished."""
        claimed = await self._claim(keys=[self.due_key], args=[now_ms, self.lease_ms, max_tenants])
        tenants = sorted((raw.decode() for raw in claimed), key=lambda tenant: -band(tenant))
        finished = 0
        for tenant in tenants:
            finished += await self._drain(tenant, handle, now_ms)
        return finished

    async def _drain(self, tenant: str, handle: Handler, now_ms: int) -> int:
        key = self._list(tenant)
        finished = 0
        while True:
            head = await self.client.lindex(key, 0)
            if head is None:
                # Empty: forget the tenant unless something arrived meanwhile.
                async with self.client.pipeline(transaction=True) as pipe:
                    pipe.zrem(self.due_key, tenant)
                    pipe.llen(key)
                    _, length = await pipe.execute()
                if length:
                    await self.client.zadd(self.due_key, {tenant: now_ms})
                return finished
            result = await handle(tenant, _decoder.decode(head))
            if not result.done:
                await self.client.zadd(self.due_key, {tenant: now_ms + max(1, result.retry_after_ms)})
                return finished
            await self.client.lpop(key)
            finished += 1
