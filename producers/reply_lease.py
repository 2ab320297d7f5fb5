"""An exclusive lease on one reply partition, held in Redis while the client lives.

Without a lease clients pick a partition at random and may share one (correct:
replies for unknown ids are dropped, but each client then reads the other's
traffic). With Redis the client claims a free partition and renews the claim;
only when every partition is leased does it share one, and says so.
"""

from __future__ import annotations

import asyncio
import random
import uuid

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class ReplyLease:
    def __init__(self, client: Redis, prefix: str, *, ttl_s: float = 30.0) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_ms = int(ttl_s * 1000)
        self.owner = uuid.uuid4().hex
        self.partition: int | None = None
        self.exclusive = False
        self._renewer: asyncio.Task[None] | None = None
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def key(self, partition: int) -> str:
        return f"{self.prefix}:reply-lease:{partition}"

    async def acquire(self, partitions: list[int]) -> int:
        for partition in random.sample(partitions, len(partitions)):
            if await self.client.set(self.key(partition), self.owner, nx=True, px=self.ttl_ms):
                self.partition, self.exclusive = partition, True
                self._renewer = asyncio.create_task(self._keep())
                return partition
        self.partition = random.choice(partitions)
        log.warning(
            "client.reply_partition_shared",
            partition=self.partition,
            partitions=len(partitions),
            hint="more client instances than reply partitions: raise KINFER_REPLY_PARTITIONS",
        )
        return self.partition

    async def _keep(self) -> None:
        assert self.partition is not None
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            try:
                if not await self._renew(keys=[self.key(self.partition)], args=[self.owner, self.ttl_ms]):
                    log.warning("client.reply_lease_lost", partition=self.partition)
            except (OSError, RedisError) as exc:  # Redis away: the lease may lapse; replies still route by id
                log.warning("client.reply_lease_renew_failed", error=str(exc))

    async def release(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
        if self.exclusive and self.partition is not None:
            await self._release(keys=[self.key(self.partition)], args=[self.owner])
        await self.client.aclose()
