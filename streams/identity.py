"""Who a request is from: a tenant is trusted only when its request is signed with its key.

On a secured pipeline (``AdmissionConfig.require_signatures``) every request must carry a
valid ``kinfer-signature`` (``schemas/signing.py``) under one of its tenant's live keys, kept
in Redis (``<prefix>:tenant-keys:<tenant>``: fields ``current`` and, during a rotation,
``previous``; written by ``kinfer tenant``). An unsigned or mis-signed request is refused
``unauthenticated`` before it touches anything of the tenant it names: no quota spent, no
idempotency mark set (else a forger could make the real request with that id look like a
duplicate).

A signature binds the record's value, and with it ``created_ms``: a signed request older than
``signed_max_age_s`` (or ahead of admission's clock by more than ``clock_skew_s``) is refused
as a replay. Within that age its idempotency marks, kept an hour, still drop a copy replayed
byte for byte; past it the marks may be gone and the age refuses it.

A refusal of a request that did not prove itself is *withheld*: dead-lettered and counted,
never written to the reply topic it names, which could be another tenant's (a forger who knew
a pending request id would fail that call for free). With ``private_replies`` a request may
name only its tenant's own reply topic (or the shared one, which only the gateway reads); a
proven request naming another is refused on its own topic, signed.
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
from kinfer.schemas.request_keys import MARKER_TTL_S
from kinfer.schemas.signing import SIGNATURE, SignatureRefused, verified_key
from kinfer.schemas.signing import reply_key as derive_reply_key
from kinfer.streams.seams import wall_ms

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
    """Not proven to come from its tenant: refused, and the refusal withheld (dead letter only)."""

    code: ErrorCode
    why: str


@dataclass(frozen=True)
class Proven:
    reply_key: str | None
    """What the request's answers are signed with (None: its tenant was not asked to prove itself)."""


@dataclass(frozen=True)
class Misaddressed:
    """Proven, but naming a reply topic its tenant may not read: refused on the tenant's own."""

    reply_key: str | None
    own: ReplyAddress
    why: str


@dataclass(frozen=True)
class Freshness:
    """How old a signed request may be, by the ``created_ms`` its signature covers."""

    max_age_ms: int
    skew_ms: int

    def __post_init__(self) -> None:
        if self.max_age_ms + self.skew_ms >= MARKER_TTL_S * 1000:
            raise ValueError("a signed request's max age plus the clock skew must stay under the marks' hour")

    def why_stale(self, created_ms: int, now_ms: int) -> str | None:
        if created_ms <= 0:
            return "a signed request must carry created_ms (its issue time, which the signature covers)"
        if created_ms > now_ms + self.skew_ms:
            ahead = created_ms - now_ms
            return f"created_ms is {ahead} ms ahead of admission's clock (allowed: {self.skew_ms})"
        if now_ms - created_ms > self.max_age_ms:
            age_s, max_s = (now_ms - created_ms) // 1000, self.max_age_ms // 1000
            return f"signed {age_s} s ago, older than the {max_s} s a signed request is good for (a replay?)"
        return None


class Signed(Protocol):
    """What a signature covers beside the value: a request, or a cancel."""

    @property
    def request_id(self) -> str: ...
    @property
    def tenant(self) -> str: ...
    @property
    def deadline_ms(self) -> int | None: ...
    @property
    def created_ms(self) -> int: ...
    @property
    def reply_to(self) -> ReplyAddress: ...


Proof = Proven | Unproven | Misaddressed


def proof_required(authenticator: Authenticator | None) -> bool:
    """Whether tenants must sign: then a record that proves no tenant gets no answer."""
    return authenticator is not None and authenticator.requires_proof


class Authenticator:
    """Refuses requests whose tenant is not proven, that are too old to be anything but a
    replay, or that would send answers where the tenant may not read them."""

    def __init__(
        self,
        names: TopicNames,
        keys: KeySource | None,
        private_replies: bool,
        freshness: Freshness | None = None,
        clock_ms: Callable[[], int] = wall_ms,
    ) -> None:
        self.names = names
        self.keys = keys
        self.private_replies = private_replies
        self.freshness = freshness
        self.clock_ms = clock_ms

    @property
    def requires_proof(self) -> bool:
        """Whether tenants must sign: then nothing unproven is ever answered on a reply topic."""
        return self.keys is not None

    async def check(self, request: Signed, value: bytes, hdrs: dict[str, str]) -> Proof:
        reply_key = None
        tenant = request.tenant
        if self.keys is not None:
            try:
                keys = await self.keys.live(request.tenant)
            except (OSError, RedisError) as exc:
                log.warning("admission.tenant_keys_unavailable", tenant=request.tenant, error=str(exc))
                return Unproven(ErrorCode.UNAVAILABLE, "tenant keys cannot be read now (Redis)")
            rid, deadline = request.request_id, request.deadline_ms
            try:
                key = verified_key(keys, hdrs.get(SIGNATURE), rid, tenant, deadline, value)
            except SignatureRefused as exc:
                return Unproven(ErrorCode.UNAUTHENTICATED, f"tenant {tenant!r} not proven: {exc}")
            if self.freshness is not None and (
                stale := self.freshness.why_stale(request.created_ms, self.clock_ms())
            ):
                return Unproven(ErrorCode.UNAUTHENTICATED, f"tenant {tenant!r} not proven: {stale}")
            reply_key = derive_reply_key(key, rid)
        if self.private_replies:
            own = self.names.tenant_replies(request.tenant)
            if request.reply_to.topic not in (own, self.names.replies):
                why = f"reply_to {request.reply_to.topic} is not tenant {tenant!r}'s reply topic {own}"
                return Misaddressed(reply_key, ReplyAddress(own, request.reply_to.partition), why)
        return Proven(reply_key)
