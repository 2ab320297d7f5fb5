"""How long any stage waits on Redis: every client is built with these bounds.

A hung Redis (stopped, or a network that drops without a reset) keeps connections open and
answers nothing; without a bound a call waits until the kernel gives up on the socket, and a
stage stalls with it. Bounded, a call past its timeout counts as Redis being away and the
stage's outage policy applies at once (docs/design/delivery.md). One immediate retry replaces a
broken pooled connection (after a Redis restart); a timeout is never retried, so a hung
Redis costs one timeout per call, not two.
"""

from __future__ import annotations

from typing import Any, Final

from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.retry import Retry

DECISION_S: Final = 1.0
"""Admission's calls (a bucket check, a mark: milliseconds when Redis is well, sometimes
hundreds of ms on a loaded 2-core machine)."""
WORKER_S: Final = 0.5
"""A worker's best-effort calls (markers, cache, heartbeats): answers never wait for them."""
CLIENT_S: Final = 1.0
"""The SDK's and gateway's calls (sessions, reply-partition leases, served models)."""
PROBE_S: Final = 0.25
"""A stage's ping while it takes Redis as away (see ``schemas.outage``): its own client, so
finding a Redis still hung costs no decision anything, and a recovery is seen within
``retry_after_s`` + this."""


def bounded(timeout_s: float, *, asyncio: bool = False) -> dict[str, Any]:
    """``redis.Redis.from_url`` options: ``timeout_s`` to connect and for each reply."""
    retry = (AsyncRetry if asyncio else Retry)(NoBackoff(), 1, supported_errors=(RedisConnectionError,))
    return {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s, "retry": retry}


def busy(exc: BaseException) -> bool:
    """A Redis that answers ``BUSY`` (a script running past its limit) is away, like a hung one;
    ``LOADING`` is already a connection error in redis-py."""
    return isinstance(exc, ResponseError) and str(exc).startswith("BUSY")
