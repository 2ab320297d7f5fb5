"""Rate limiters: shared through Redis (one atomic script per decision), or local.

The Redis limiter holds the limit across any number of admission workers: every
decision runs one Lua script on the tenant's bucket hash, so replicas never
multiply the limit. Its clock is Redis's own ``TIME`` (no skew between
workers); tests pass a clock instead.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis

from kinfer.streams.limits.bucket import BucketState, LimitDecision, acquire, settle
from kinfer.streams.limits.tiers import Tier

_ACQUIRE = """
local now = tonumber(ARGV[1])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local req_rate, req_cap = tonumber(ARGV[2]), tonumber(ARGV[3])
local tok_rate, tok_cap, tok_cost = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local b = redis.call('HMGET', KEYS[1], 'r', 't', 'ts')
local r = tonumber(b[1]) or req_cap
local t = tonumber(b[2]) or tok_cap
local ts = tonumber(b[3]) or now
local elapsed = math.max(0, now - ts)
r = math.min(req_cap, r + elapsed * req_rate)
t = math.min(tok_cap, t + elapsed * tok_rate)
local wait = 0
if r < 1 then wait = math.max(wait, (1 - r) / req_rate) end
if t < tok_cost then wait = math.max(wait, (tok_cost - t) / tok_rate) end
if wait == 0 then r = r - 1; t = t - tok_cost end
redis.call('HSET', KEYS[1], 'r', string.format('%.6f', r), 't', string.format('%.6f', t),
           'ts', string.format('%.3f', math.max(now, ts)))
redis.call('PEXPIRE', KEYS[1], ARGV[7])
-- Lua numbers reach Python as truncated integers: the buckets go back as strings.
local left = {string.format('%.6f', r), string.format('%.6f', t)}
if wait == 0 then return {1, 0, left[1], left[2]} end
return {0, math.ceil(wait), left[1], left[2]}
"""

_SETTLE = """
local t = tonumber(redis.call('HGET', KEYS[1], 't'))
if t == nil then return 0 end
t = math.min(tonumber(ARGV[2]), t + tonumber(ARGV[1]))
redis.call('HSET', KEYS[1], 't', string.format('%.6f', t))
return 1
"""


class RedisLimiter:
    def __init__(self, client: Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._acquire = client.register_script(_ACQUIRE)
        self._settle = client.register_script(_SETTLE)

    def key(self, tenant: str) -> str:
        return f"{self.prefix}:limit:{tenant}"

    async def acquire(
        self, tenant: str, tier: Tier, tokens: float, now_ms: float | None = None
    ) -> LimitDecision:
        # Idle buckets expire once they would be full again anyway.
        ttl_ms = (
            int(
                max(tier.request_burst / tier.requests_per_min, tier.token_burst / tier.tokens_per_min)
                * 60_000
            )
            + 60_000
        )
        allowed, wait, requests_left, tokens_left = await self._acquire(
            keys=[self.key(tenant)],
            args=[
                "" if now_ms is None else repr(float(now_ms)),
                tier.requests_per_min / 60_000,
                tier.request_burst,
                tier.tokens_per_min / 60_000,
                tier.token_burst,
                tokens,
                ttl_ms,
            ],
        )
        return LimitDecision(bool(allowed), int(wait), float(requests_left), float(tokens_left))

    async def settle(self, tenant: str, tier: Tier, delta_tokens: float) -> None:
        await self._settle(keys=[self.key(tenant)], args=[delta_tokens, tier.token_burst])


class LocalLimiter:
    """The same buckets in this process only: the fallback while Redis is down.

    Each admission worker then holds the limit on its own, so N workers admit up
    to N times the limit until Redis is back.
    """

    def __init__(self) -> None:
        self._buckets: dict[str, BucketState] = {}

    async def acquire(
        self, tenant: str, tier: Tier, tokens: float, now_ms: float | None = None
    ) -> LimitDecision:
        return self.acquire_now(tenant, tier, tokens, now_ms)

    def acquire_now(
        self, tenant: str, tier: Tier, tokens: float, now_ms: float | None = None
    ) -> LimitDecision:
        now = time.time() * 1000 if now_ms is None else now_ms
        state, decision = acquire(self._buckets.get(tenant), tier, now, tokens)
        self._buckets[tenant] = state
        return decision

    async def settle(self, tenant: str, tier: Tier, delta_tokens: float) -> None:
        if tenant in self._buckets:
            self._buckets[tenant] = settle(self._buckets[tenant], tier, delta_tokens)
