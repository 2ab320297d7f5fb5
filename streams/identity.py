"""Who a request is from: a tenant is trusted only when its request is signed with its key.

On a secured pipeline (``AdmissionConfig.require_signatures``) every request must carry a
valid ``kinfer-signature`` (``schemas/signing.py``) under one of its tenant's live keys, kept
in Redis (``<prefix>:tenant-keys:<tenant>``: fields ``current`` and, during a rotation,
``previous``; written by ``kinfer tenant``). An unsigned or mis-signed request is refused
``unauthenticated`` before it touches anything of the tenant it names: no quota spent, no
idempotency mark set (else a forger could make the real request with that id look like a
duplicate). With ``private_replies`` a request may name only its tenant's own reply topic
(or the shared one, which only the gateway reads).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from kinfer.schemas import ErrorCode, ReplyAddress, TopicNames
from kinfer.schemas.signing import SIGNATURE, SignatureRefused, verified_key
from kinfer.schemas.signing import reply_key as derive_reply_key

log = structlog.get_logger(__name__)

KEYS_FRESH_S = 5.0
"""How long a tenant's keys are trusted before they are read again (a rotation or a
revocation takes effect within this)."""


def tenant_keys_key(prefix: str, tenant: str) -> str:
    return f"{prefix}:tenant-keys:{tenant}"


class TenantKeys:
    """Each tenant's live signing keys, read from Redis and kept a few seconds."""

    def __init__(self, redis: Redis, prefix: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.redis = redis
        self.prefix = prefix
        self.clock = clock
        self._seen: dict[str, tuple[list[str], float]] = {}

    async def live(self, tenant: str) -> list[str]:
        keys, at = self._seen.get(tenant, ([], float("-inf")))
        if self.clock() - at < KEYS_FRESH_S:
            return keys
        fields = await self.redis.hmget(tenant_keys_key(self.prefix, tenant), ["current", "previous"])
        keys = [f.decode() if isinstance(f, bytes) else str(f) for f in fields if f]
        self._seen[tenant] = (keys, self.clock())
        return keys


class KeySource(Protocol):
    async def live(self, tenant: str) -> list[str]:
        """The tenant's live signing keys (none: the tenant cannot be proven)."""
        ...


@dataclass(frozen=True)
class Unproven:
    code: ErrorCode
    why: str


@dataclass(frozen=True)
class Proven:
    reply_key: str | None
    """What the request's answers are signed with (None: its tenant was not asked to prove itself)."""


class Signed(Protocol):
    """What a signature covers beside the value: a request, or a cancel."""

    @property
    def request_id(self) -> str: ...
    @property
    def tenant(self) -> str: ...
    @property
    def deadline_ms(self) -> int | None: ...
    @property
    def reply_to(self) -> ReplyAddress: ...


class Authenticator:
    """Refuses requests whose tenant is not proven, or that would send answers where the
    tenant may not read them."""

    def __init__(self, names: TopicNames, keys: KeySource | None, private_replies: bool) -> None:
        self.names = names
        self.keys = keys
        self.private_replies = private_replies

    async def check(self, request: Signed, value: bytes, hdrs: dict[str, str]) -> Proven | Unproven:
        reply_key = None
        if self.keys is not None:
            try:
                keys = await self.keys.live(request.tenant)
            except (OSError, RedisError) as exc:
                log.warning("admission.tenant_keys_unavailable", tenant=request.tenant, error=str(exc))
                return Unproven(ErrorCode.UNAVAILABLE, "tenant keys cannot be read now (Redis)")
            rid, tenant, deadline = request.request_id, request.tenant, request.deadline_ms
            try:
                key = verified_key(keys, hdrs.get(SIGNATURE), rid, tenant, deadline, value)
            except SignatureRefused as exc:
                return Unproven(ErrorCode.UNAUTHENTICATED, f"tenant {tenant!r} not proven: {exc}")
            reply_key = derive_reply_key(key, rid)
        if self.private_replies:
            own = self.names.tenant_replies(request.tenant)
            if request.reply_to.topic not in (own, self.names.replies):
                return Unproven(
                    ErrorCode.INVALID_REQUEST,
                    f"reply_to {request.reply_to.topic} is not tenant {request.tenant!r}'s reply topic {own}",
                )
        return Proven(reply_key)
