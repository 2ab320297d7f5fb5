"""A caller that goes away cancels its request: nobody would read the tokens.

Non-streaming calls race the SDK call against the HTTP connection's ``http.disconnect``
(the body is read already, so the next ASGI message is that, once the caller hangs up);
streaming calls cancel when Starlette closes the event stream before its last event. The
cancel is sent in the background: the request's own ``cancelled`` answer goes to the reply
topic, where the gateway's client drops it quietly (nobody awaits it any more).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

import structlog
from fastapi import Request

from kinfer.producers.client import AsyncClient
from kinfer.producers.errors import RequestFailed
from kinfer.producers.gateway import metrics
from kinfer.schemas import InferenceResult, TokenChunk

log = structlog.get_logger(__name__)
T = TypeVar("T")
Items = AsyncIterator[TokenChunk | InferenceResult]


class CallerGone(Exception):
    """The HTTP caller disconnected before its answer was ready."""


class Canceller:
    """Sends the cancels of abandoned calls, keeping each task until it ends."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self._tasks: set[asyncio.Task[None]] = set()

    def cancel(self, request_id: str, tenant: str, why: str) -> None:
        task = asyncio.get_running_loop().create_task(self._send(request_id, tenant, why))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, request_id: str, tenant: str, why: str) -> None:
        metrics.DISCONNECT_CANCELS.labels(why).inc()
        try:
            ack = await self.client.cancel(request_id, tenant=tenant)
            log.info("gateway.cancelled", request_id=request_id, why=why, status=ack.status)
        except RequestFailed as exc:
            log.warning("gateway.cancel_failed", request_id=request_id, error=exc.message)

    async def unless_gone(self, request: Request, call: Awaitable[T], request_id: str, tenant: str) -> T:
        """``call``'s result, or :class:`CallerGone` (and the request cancelled) when the
        caller disconnects first."""
        task = asyncio.ensure_future(call)
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if task.done():
            return task.result()
        task.cancel()
        self.cancel(request_id, tenant, "disconnected")
        raise CallerGone(request_id)

    async def cancel_if_abandoned(self, items: Items, request_id: str, tenant: str) -> Items:
        """``items``, cancelling the request when the stream is closed before its result."""
        finished = False
        try:
            async for item in items:
                finished = finished or isinstance(item, InferenceResult)
                yield item
        except RequestFailed:
            finished = True  # answered (with an error): nothing left to cancel
            raise
        finally:
            if not finished:
                self.cancel(request_id, tenant, "stream_closed")


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
