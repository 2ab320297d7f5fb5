"""Admission's Redis client: the commands its concurrent actors issue in one turn of the event
loop go to Redis as one pipeline.

Each admission decision makes a few Redis calls (its decision mark, the tenant's bucket, the
cache, its reservation), and the agent's actors make them at the same time. Sent one by one,
every call cost a socket write and a read on both ends, the largest part of admission's CPU
under load (a profile put a quarter of it in socket writes). Coalesced, a busy turn pays one
round trip for all of them. Order is kept: commands go out in the order they were issued, so
one coroutine's calls still run one after the other, as before. Pipelines and transactions
the code builds itself (the delay queue's) are sent as they are.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis

from kinfer.streams import metrics

_Pending = tuple[tuple[Any, ...], dict[str, Any], "asyncio.Future[Any]"]


class PipeliningRedis(Redis):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: list[_Pending] = []
        self._flush_scheduled = False

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((args, options, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            # Runs after every callback already queued: whatever else this turn issues joins.
            loop.call_soon(self._flush_soon)
        return await future

    def _flush_soon(self) -> None:
        batch, self._pending = self._pending, []
        self._flush_scheduled = False
        task = asyncio.ensure_future(self._send(batch))
        task.add_done_callback(_retrieve)

    async def _send(self, batch: list[_Pending]) -> None:
        metrics.REDIS_ROUND_TRIPS.inc()
        metrics.REDIS_COMMANDS.inc(len(batch))
        if len(batch) == 1:
            args, options, future = batch[0]
            try:
                result = await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
            except Exception as exc:  # noqa: BLE001 - handed to the caller, whatever it is
                _settle(future, exc)
            else:
                _settle(future, result)
            return
        pipe = self.pipeline(transaction=False)
        for args, options, _ in batch:
            pipe.execute_command(*args, **options)
        try:
            results = await pipe.execute(raise_on_error=False)
        except Exception as exc:  # noqa: BLE001 - the connection failed: every caller sees it
            for _, _, future in batch:
                _settle(future, exc)
            return
        for (_, _, future), result in zip(batch, results, strict=True):
            _settle(future, result)


def _settle(future: asyncio.Future[Any], outcome: Any) -> None:
    if future.done():  # its caller gave up (a timeout cancelled it)
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _retrieve(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()  # failures went to the callers; nothing is left unretrieved
