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

from kinfer.consumers.redis_gate import RedisGate
from kinfer.schemas.request_keys import MARKER_TTL_S, answered_key

log = structlog.get_logger(__name__)


class RequestDeduplicator:
    def __init__(
        self,
        client: redis.Redis | None = None,
        prefix: str = "kinfer",
        capacity: int = 100_000,
        gate: RedisGate | None = None,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.capacity = capacity
        self.gate = gate or RedisGate()
        self._local: OrderedDict[str, None] = OrderedDict()
        self._in_flight: set[str] = set()

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
        return answered_key(self.prefix, key)

    def seen(self, request_ids: list[str]) -> set[str]:
        """The ids among these that some worker has answered (one Redis round trip)."""
        found = {rid for rid in request_ids if rid in self._local}
        rest = [rid for rid in request_ids if rid not in found]
        client = self.client
        if client is None or not rest:
            return found
        marks = self.gate.call(lambda: client.mget([self.redis_key(rid) for rid in rest]), None)
        if marks is None:  # Redis away: the local memory still holds this worker's ids
            return found
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
        client = self.client
        if client is None or not ids:
            return

        def mark() -> None:
            with client.pipeline(transaction=False) as pipe:
                for rid in ids:
                    pipe.set(self.redis_key(rid), b"1", ex=MARKER_TTL_S)
                pipe.execute()

        self.gate.call(mark, None)
