"""Which requests are in flight or answered already: admission is at-least-once, so a
request may be dispatched twice (a Faust redelivery after a rebalance), and the second
copy must be skipped, not answered again.

A copy is recognised while its original is in flight here (taken in, answer not yet
committed), or once an answer committed: ids this process answered (a bounded LRU,
always on) and a marker per answered id in Redis shared by every worker (when Redis
is configured), which covers a copy that reaches another worker after a rebalance.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from collections.abc import Set as AbstractSet

import redis
import structlog

log = structlog.get_logger(__name__)


def request_key(tenant: str, request_id: str) -> str:
    """Request ids are chosen by clients: scoped by tenant, one tenant's ids can never
    make another tenant's requests look answered."""
    return f"{len(tenant)}:{tenant}:{request_id}"


ANSWERED_TTL_S = 3600
"""How long an answered id is remembered in Redis: far past any redelivery."""


class RequestDeduplicator:
    def __init__(
        self, client: redis.Redis | None = None, prefix: str = "kinfer", capacity: int = 100_000
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.capacity = capacity
        self._local: OrderedDict[str, None] = OrderedDict()
        self._in_flight: set[str] = set()
        self._redis_ok = True

    # Every id below is a :func:`request_key`.

    def take(self, key: str, answered: AbstractSet[str]) -> bool:
        """True for a new request (now in flight); False for a copy to skip. ``answered``:
        what :meth:`seen` said for the poll this request came in."""
        if key in answered or key in self._in_flight:
            return False
        self._in_flight.add(key)
        return True

    def in_flight(self, key: str) -> bool:
        return key in self._in_flight

    def dropped(self, keys: Iterable[str]) -> None:
        """Given up unanswered (partitions revoked, a transaction aborted): a redelivery is
        the request itself, not a copy."""
        self._in_flight.difference_update(keys)

    def drop_all(self) -> None:
        self._in_flight.clear()

    def redis_key(self, key: str) -> str:
        return f"{self.prefix}:answered:{key}"

    def seen(self, request_ids: list[str]) -> set[str]:
        """The ids among these that some worker has answered (one Redis round trip)."""
        found = {rid for rid in request_ids if rid in self._local}
        rest = [rid for rid in request_ids if rid not in found]
        if self.client is None or not rest:
            return found
        try:
            marks = self.client.mget([self.redis_key(rid) for rid in rest])
        except redis.RedisError as exc:
            self._warn(exc)
            return found
        self._redis_ok = True
        return found | {rid for rid, mark in zip(rest, marks, strict=True) if mark is not None}

    def committed(self, request_ids: Iterable[str]) -> None:
        """After the transaction holding their answers committed."""
        ids = list(request_ids)
        self._in_flight.difference_update(ids)
        for rid in ids:
            self._local[rid] = None
            self._local.move_to_end(rid)
        while len(self._local) > self.capacity:
            self._local.popitem(last=False)
        if self.client is None or not ids:
            return
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for rid in ids:
                    pipe.set(self.redis_key(rid), b"1", ex=ANSWERED_TTL_S)
                pipe.execute()
        except redis.RedisError as exc:
            self._warn(exc)

    def _warn(self, exc: redis.RedisError) -> None:
        if self._redis_ok:  # once per outage: the local memory still holds this worker's ids
            log.warning("worker.dedupe_redis_unreachable", error=str(exc))
        self._redis_ok = False
