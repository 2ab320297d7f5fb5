"""Writes finished deterministic answers to the response cache that admission reads."""

from __future__ import annotations

import redis
import structlog

from kinfer.consumers.redis_gate import RedisGate
from kinfer.schemas import InferenceRequest, InferenceResult, encode
from kinfer.schemas.cache import cache_key, cache_redis_key

log = structlog.get_logger(__name__)


class ResultCache:
    """Best effort: a cache write that fails is skipped (see ``RedisGate``), never retried."""

    def __init__(self, client: redis.Redis, prefix: str, ttl_s: int, gate: RedisGate | None = None) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.gate = gate or RedisGate()

    def store(self, results: list[tuple[InferenceRequest, InferenceResult]]) -> int:
        entries = {}
        for request, result in results:
            key = cache_key(request)
            if key is not None:
                entries[cache_redis_key(self.prefix, key)] = encode(result)
        if not entries:
            return 0

        def write() -> int:
            with self.client.pipeline(transaction=False) as pipe:
                for key, value in entries.items():
                    pipe.set(key, value, ex=self.ttl_s)
                pipe.execute()
            return len(entries)

        return self.gate.call(write, 0)
