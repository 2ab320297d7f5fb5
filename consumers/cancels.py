"""Which requests a worker holds were cancelled: the worker's half of cancel (admission's is
``streams/cancels.py``, which says why a Redis mark).

Admission marks a cancelled request in Redis and publishes its key on the cancels channel.
The worker subscribes before it takes in any record, so for a request it holds a cancel is
either in the marks it reads when the request comes in (one MGET per poll) or published
afterwards, read from the subscription each turn without a round trip. When the subscription
breaks (Redis restarted) the marks of everything held are read again once it is back.
Best effort like every worker use of Redis: while Redis is away, requests run to their end.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import redis
import structlog
from redis.client import PubSub

from kinfer.consumers.redis_gate import RedisGate
from kinfer.schemas.request_keys import cancelled_key, cancels_channel

log = structlog.get_logger(__name__)

MAX_MESSAGES_PER_TURN = 1000
"""A cancel storm is read over a few turns rather than holding up one."""


class CancelWatch:
    def __init__(self, client: redis.Redis | None, prefix: str, gate: RedisGate) -> None:
        self.client = client
        self.prefix = prefix
        self.gate = gate
        self._pubsub: PubSub | None = None
        self._resync = True
        """The subscription (re)started: what is held must be checked against the marks."""

    def start(self) -> None:
        """Subscribe (before the first record is taken in)."""
        self._subscribe()

    def marked(self, keys: Iterable[str]) -> set[str]:
        """Which of these request keys are cancelled (one round trip; none while Redis is away)."""
        client, wanted = self.client, list(keys)
        if client is None or not wanted:
            return set()
        marks = self.gate.call(lambda: client.mget([cancelled_key(self.prefix, k) for k in wanted]), None)
        return {key for key, mark in zip(wanted, marks or [], strict=False) if mark is not None}

    def new(self, held: Iterable[str]) -> set[str]:
        """Keys among ``held`` cancelled since the last call."""
        if self.client is None:
            return set()
        if self._pubsub is None and not self._subscribe():
            return set()
        assert self._pubsub is not None
        found: set[str] = set()
        try:
            for _ in range(MAX_MESSAGES_PER_TURN):
                message = self._pubsub.get_message(ignore_subscribe_messages=True, timeout=0.0)
                if message is None:
                    break
                data = message.get("data")
                if isinstance(data, bytes):
                    found.add(data.decode())
        except (redis.RedisError, OSError) as exc:
            log.warning("worker.cancels_unsubscribed", error=str(exc))
            self._close()
            return set()
        if not found and not self._resync:
            return set()  # the common turn: nothing published, nothing held is looked at
        keys = set(held)
        if self._resync:
            self._resync = False
            found |= self.marked(keys)
        return found & keys

    def close(self) -> None:
        self._close()

    def _subscribe(self) -> bool:
        client = self.client
        if client is None or not self.gate.up:
            return False
        pubsub = client.pubsub()

        def subscribe() -> bool:
            pubsub.subscribe(cancels_channel(self.prefix))
            return True

        if not self.gate.call(subscribe, False):
            pubsub.close()
            return False
        self._pubsub, self._resync = pubsub, True
        return True

    def _close(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(redis.RedisError, OSError):
                self._pubsub.close()
            self._pubsub = None
