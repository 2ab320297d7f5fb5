"""Admission control: validate -> rate limit (or queue) -> cache -> breaker-aware route.

Each step's logic is a pure function elsewhere (``admission.decide``,
``limits.bucket``, ``breakers.state``, ``routing``); this class composes them
with the shared state in Redis and returns the effects for the agent to carry
out. Redis being down never stops admission (see ``RedisHealth``): the cache is
bypassed, limits are held per worker, paid excess is refused instead of queued.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import msgspec
import structlog

from kinfer.schemas import (
    CancelAck,
    ErrorCode,
    ErrorReply,
    InferenceRequest,
    InferenceResult,
    RateLimitStatus,
    TopicNames,
    decode_reply,
    headers,
)
from kinfer.schemas.cache import as_chunks, cache_key, cacheable
from kinfer.schemas.codec import reply_target
from kinfer.schemas.refusals import Refused
from kinfer.schemas.signing import REPLY_KEY
from kinfer.streams import fallbacks, metrics
from kinfer.streams.admission import AdmissionLimits, Admit, decide, reserved_tokens, stamped
from kinfer.streams.answers import refuse, reject
from kinfer.streams.breakers.state import State
from kinfer.streams.cancels import CancelDesk, queued_cancel
from kinfer.streams.decision_marks import DecisionMarks, remembered
from kinfer.streams.delay_queue import PumpResult, QueuedRequest
from kinfer.streams.effects import Answer, Effect, Forward, signed
from kinfer.streams.identity import Authenticator, Misaddressed, Proof, Proven, Unproven, proof_required
from kinfer.streams.keyed_locks import KeyedLocks
from kinfer.streams.limits.tiers import ReloadingTierTable, TenantPolicy
from kinfer.streams.redis_health import RedisHealth
from kinfer.streams.residency import ResidencyGate
from kinfer.streams.routing.links import LinkView
from kinfer.streams.routing.regions import NoRoute, RegionRouter
from kinfer.streams.seams import (
    AnswerLedger,
    Breakers,
    DelayQueue,
    Limiter,
    ReplyChecker,
    RequestStore,
    wall_ms,
)
from kinfer.streams.shared_state import SharedState

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Prefetched:
    """What a decision reads from Redis, read in one round trip when the record arrives."""

    queue_ahead: bool
    """A paid tenant has requests waiting in the delay queue."""
    cached: bytes | None
    """The request's response-cache entry, when it has a cache key and one was there."""


class AdmissionController:
    def __init__(
        self,
        *,
        names: TopicNames,
        limits: AdmissionLimits,
        router: RegionRouter,
        tiers: ReloadingTierTable,
        limiter: Limiter,
        breakers: Breakers,
        delay: DelayQueue,
        store: RequestStore,
        reply_topics: ReplyChecker,
        ledger: AnswerLedger,
        health: RedisHealth | None = None,
        authenticator: Authenticator | None = None,
        cancels: CancelDesk | None = None,
        residency: ResidencyGate | None = None,
        links: LinkView | None = None,
        clock_ms: Callable[[], int] = wall_ms,
    ) -> None:
        self.names = names
        self.residency = residency or ResidencyGate(home="", linked=False)
        self.links = links
        self.peers = links.peers if links is not None else ()
        """Regions whose workers heartbeat in their own Redis: served, as far as admission knows."""
        self.authenticator = authenticator
        self.cancels = cancels
        self.limits = limits
        self.router = router
        self.tiers = tiers
        self.health = health or RedisHealth()
        self.state = SharedState(
            limiter=limiter,
            breakers=breakers,
            delay=delay,
            store=store,
            health=self.health,
            clock_ms=clock_ms,
        )
        self.reply_topics = reply_topics
        self.marks = DecisionMarks(self.state, ledger)
        self.clock_ms = clock_ms
        self._locks = KeyedLocks()

    # -- one ingress record ------------------------------------------------------------

    async def admit(
        self, value: bytes | None, hdrs: list[tuple[str, bytes]], source: tuple[str, int, int]
    ) -> list[Effect]:
        now = self.clock_ms()
        began = time.time() * 1000  # a measurement (Timings.admitted_ms), not a decision input
        decoded = headers.decode_headers(hdrs)
        if decoded.get(headers.KIND) == headers.CANCEL:
            return await self._cancel(value or b"", decoded, source)
        first = decide(value, decoded, now_ms=now, limits=self.limits)
        if first.request is None:  # unreadable: no id to be idempotent by, no tenant to prove
            assert isinstance(first, Refused)
            if proof_required(self.authenticator):
                reason = first.dead_letter_reason or first.reply.message
                return self._withheld(first.reply, reason, value, source)
            return self._reject(first, value or b"", source)
        request = first.request
        # Proven before anything of the tenant it names is touched (quota, idempotency marks).
        proof = await self._prove(request, value or b"", decoded)
        if isinstance(proof, Unproven):
            reply = ErrorReply(request_id=request.request_id, code=proof.code, message=proof.why)
            return self._withheld(reply, proof.why, value, source, request)
        if isinstance(proof, Misaddressed):
            reply = ErrorReply(
                request_id=request.request_id, code=ErrorCode.INVALID_REQUEST, message=proof.why
            )
            effects = self._reject(Refused(reply, proof.own, request, proof.why), value or b"", source)
            return signed(effects, proof.reply_key)
        if (
            why := self.residency.refusal(request.tenant, self.tiers.policy(request.tenant).residency)
        ) is not None:
            return self._misplaced(request, why, value or b"", source)
        hdrs = [(k, v) for k, v in hdrs if k != REPLY_KEY]  # only admission gives a reply key
        if proof.reply_key is not None:  # to the worker; kept with the record in the delay queue
            hdrs.append((REPLY_KEY, proof.reply_key.encode()))
        if isinstance(first, Refused):
            if await self.marks.already_decided(request, await self.marks.read(request)):
                return []
            refusal = remembered(request, self._reject(first, value or b"", source), now)
            return signed(refusal, proof.reply_key)
        # Records reach the agent's concurrent actors in offset order and decoding is
        # synchronous, so taking the tenant's lock before the first await keeps
        # per-tenant arrival order for limits and the delay queue.
        async with self._locks.hold(request.tenant):
            # What the steps below would read one after another, asked at once: one round trip
            # (see ``redis_pipelining``) instead of three in the tenant's serial path.
            mark, ahead, cached = await asyncio.gather(
                self.marks.read(request), self._queue_ahead(request), self._cache_entry(request)
            )
            if await self.marks.already_decided(request, mark):
                return []
            if (why := await self.reply_topics.why_unanswerable(request.reply_to)) is not None:
                # Nothing can be answered there, and a worker must never be handed it.
                reply = ErrorReply(request_id=request.request_id, code=ErrorCode.INVALID_REQUEST, message=why)
                refused = Refused(reply, None, request, why)
                effects = self._reject(refused, value or b"", source)
            else:
                read = Prefetched(ahead, cached)
                effects = await self._admit_valid(request, value or b"", hdrs, now, began, read)
            return signed(remembered(request, effects, now), proof.reply_key)

    def _withheld(
        self,
        reply: ErrorReply,
        why: str,
        value: bytes | None,
        source: tuple[str, int, int],
        request: InferenceRequest | None = None,
    ) -> list[Effect]:
        """A refusal of a record that did not prove its sender: dead-lettered and counted, not
        written to the reply topic it names (which may be another tenant's: see ``identity``)."""
        metrics.REFUSALS_WITHHELD.labels(reply.code.value).inc()
        return self._reject(Refused(reply, None, request, why), value or b"", source)

    def _misplaced(
        self, request: InferenceRequest, why: str, value: bytes, source: tuple[str, int, int]
    ) -> list[Effect]:
        """A resident tenant's request in another region's cluster: answered, nothing kept
        (no mark, no dead letter: both would store its records here)."""
        metrics.RESIDENCY_REFUSED.labels(self.residency.home).inc()
        reply = ErrorReply(request_id=request.request_id, code=ErrorCode.INVALID_REQUEST, message=why)
        return self._reject(Refused(reply, request.reply_to, request, None), value, source)

    async def _cancel(self, value: bytes, decoded: dict[str, str], source: fallbacks.Source) -> list[Effect]:
        """A cancel record (``cancels.py``), after any earlier record of its tenant."""
        tenant = decoded.get(headers.TENANT, "")
        misplaced = self.residency.refusal(tenant, self.tiers.policy(tenant).residency)
        if misplaced is None:
            async with self._locks.hold(tenant):
                if self.cancels is not None:
                    return await self.cancels.cancel(value, decoded, source)
        request_id, address = reply_target(value, decoded)
        if address is None:
            return []
        why = misplaced or "this admission takes no cancels (it has no Redis for them)"
        code = ErrorCode.INVALID_REQUEST if misplaced else ErrorCode.UNAVAILABLE
        return [Answer(address, CancelAck(request_id=request_id, status="refused", code=code, message=why))]

    async def _prove(self, request: InferenceRequest, value: bytes, decoded: dict[str, str]) -> Proof:
        if self.authenticator is None:
            return Proven(None)
        return await self.authenticator.check(request, value, decoded)

    def _reject(self, decision: Refused, value: bytes, source: tuple[str, int, int]) -> list[Effect]:
        tenant = decision.request.tenant if decision.request is not None else None
        tier = self.tiers.policy(tenant).tier.name if tenant is not None else "unknown"
        return reject(decision, tier, value, source, self.clock_ms())

    def failed(
        self, value: bytes | None, hdrs: list[tuple[str, bytes]], source: tuple[str, int, int], exc: Exception
    ) -> list[Effect]:
        """A decision that raised (a bug): see :func:`fallbacks.failed`."""
        metrics.REJECTED.labels("unknown", ErrorCode.INTERNAL.value).inc()
        return fallbacks.failed(value, hdrs, source, exc, self.clock_ms())

    def undeliverable(
        self, effect: Effect, why: str, value: bytes | None, source: tuple[str, int, int]
    ) -> list[Effect]:
        """An effect that could not be carried out: see :func:`fallbacks.undeliverable`."""
        return fallbacks.undeliverable(effect, why, value, source, self.clock_ms())

    async def _queue_ahead(self, request: InferenceRequest) -> bool:
        """Whether a paid tenant has requests in the delay queue (new ones queue behind them)."""
        if self.tiers.policy(request.tenant).tier.over_limit != "queue":
            return False
        return await self.state.has_queue(request.tenant)

    async def _cache_entry(self, request: InferenceRequest) -> bytes | None:
        key = cache_key(request)
        return None if key is None else await self.state.cached(key)

    async def _admit_valid(
        self,
        request: InferenceRequest,
        value: bytes,
        hdrs: list[tuple[str, bytes]],
        now: int,
        began: float,
        read: Prefetched,
    ) -> list[Effect]:
        policy = self.tiers.policy(request.tenant)
        if self.state.served.unserved(request.model):
            served = ", ".join(sorted(self.state.served.models()))
            message = f"model {request.model!r} is not served here; live workers serve: {served}"
            return refuse(request, policy, ErrorCode.INVALID_REQUEST, message)
        tokens = reserved_tokens(request)
        if tokens > policy.tier.token_burst:
            message = (
                f"request needs {tokens} tokens (prompt + max_tokens); tier {policy.tier.name} "
                f"allows at most {policy.tier.token_burst:g} at once"
            )
            return refuse(request, policy, ErrorCode.INVALID_REQUEST, message)
        queued = QueuedRequest(value, hdrs, now)
        if policy.tier.over_limit == "queue" and read.queue_ahead:
            return await self._enqueue(request, policy, queued, 0, now)
        decision = await self.state.acquire(request.tenant, policy.tier, tokens)
        if not decision.allowed:
            if policy.tier.over_limit == "queue":
                return await self._enqueue(request, policy, queued, decision.retry_after_ms, now)
            message = f"tier {policy.tier.name} limit reached; retry after {decision.retry_after_ms} ms"
            status = decision.status(policy.tier)
            return refuse(request, policy, ErrorCode.RATE_LIMITED, message, decision.retry_after_ms, status)
        status = decision.status(policy.tier)
        return await self._after_limit(request, policy, tokens, value, hdrs, status, began, read.cached)

    async def _after_limit(
        self,
        request: InferenceRequest,
        policy: TenantPolicy,
        tokens: int,
        value: bytes,
        hdrs: list[tuple[str, bytes]],
        status: RateLimitStatus,
        began: float,
        entry: bytes | None,
    ) -> list[Effect]:
        """``entry``: the request's cache entry, read when it was admitted (None: none)."""
        cached = self._cached(request, status, entry)
        if cached is not None:
            await self.state.settle(request.tenant, policy.tier, tokens)  # nothing was computed
            chunks = as_chunks(cached, status) if request.stream else []
            return [*(Answer(request.reply_to, chunk) for chunk in chunks), Answer(request.reply_to, cached)]
        band = (policy.tier.priority, policy.tier.weight)
        return await self._route(request, policy, tokens, value, stamped(hdrs, status, began, band))

    async def _route(
        self,
        request: InferenceRequest,
        policy: TenantPolicy,
        tokens: int,
        value: bytes,
        hdrs: list[tuple[str, bytes]],
    ) -> list[Effect]:
        user = request.user or request.tenant
        route = await self.router.route(
            user=user,
            affinity=request.session_id or user,
            residency=policy.residency,
            allows=lambda region: self._allows(region, request.model),
            order=lambda regions: self.state.served.prefer_serving(regions, request.model, self.peers),
        )
        if isinstance(route, NoRoute):
            if not route.regions:
                message = (
                    f"tenant is pinned to residency {policy.residency!r}, which no region served here covers"
                )
                return refuse(request, policy, ErrorCode.UNAVAILABLE, message, 60_000)
            await self.state.settle(request.tenant, policy.tier, tokens)
            message = (
                f"no healthy region for model {request.model or '(any)'}: {self._unhealthy(route.regions)}"
            )
            if policy.residency:
                message += f" (tenant is pinned to {route.regions[0]})"
            return refuse(request, policy, ErrorCode.UNAVAILABLE, message, route.retry_after_ms or 1000)
        await self.state.reserve(request, policy.tier, tokens)
        metrics.ADMITTED.labels(policy.tier.name, route.region).inc()
        if route.failed_over_from is not None:
            metrics.FAILED_OVER.labels(route.failed_over_from, route.region).inc()
        if self.residency.linked and route.region != self.residency.home:
            metrics.FORWARDED.labels(self.residency.home, route.region).inc()
        dispatch = self.names.dispatch(route.region)
        return [Forward(dispatch, route.partition, request.tenant.encode(), value, hdrs, route.region)]

    def _unhealthy(self, regions: tuple[str, ...]) -> str:
        down = [r for r in regions if self.links is not None and not self.links.up(r)]
        opened = [r for r in regions if r not in down]
        parts = [f"cluster unreachable in {', '.join(down)}"] if down else []
        return "; ".join(parts + ([f"circuit open in {', '.join(opened)}"] if opened else []))

    async def _allows(self, region: str, model: str | None) -> tuple[bool, int]:
        """A region takes requests while its cluster is linked (heartbeats) and its breaker allows."""
        if self.links is not None and not self.links.up(region):
            return False, self.links.retry_after_ms()
        return await self.state.breaker_allows(region, model)

    # -- the steps ------------------------------------------------------------------

    async def _enqueue(
        self, request: InferenceRequest, policy: TenantPolicy, item: QueuedRequest, wait_ms: int, now: int
    ) -> list[Effect]:
        length = await self.state.enqueue(request.tenant, item, wait_ms, now)
        if length is None:
            message = f"tier {policy.tier.name} limit reached and the delay queue is unavailable"
            return refuse(request, policy, ErrorCode.RATE_LIMITED, message, max(wait_ms, 1000))
        metrics.QUEUED.labels(policy.tier.name).inc()
        log.info("admission.queued", request_id=request.request_id, tenant=request.tenant, depth=length)
        return []

    def _cached(
        self, request: InferenceRequest, status: RateLimitStatus, raw: bytes | None
    ) -> InferenceResult | None:
        if not cacheable(request):
            return None
        if raw is None:
            metrics.CACHE.labels("miss", request.tenant).inc()
            return None
        cached = decode_reply(raw)
        if not isinstance(cached, InferenceResult):
            return None
        metrics.CACHE.labels("hit", request.tenant).inc()
        return msgspec.structs.replace(
            cached,
            request_id=request.request_id,
            worker_id="cache",
            queue_ms=0.0,
            compute_ms=0.0,
            rate_limit=status,
            timings=None,
        )

    # -- background work (timers of the Faust app) ------------------------------------

    async def pump_delay_queue(self, send: Callable[[list[Effect]], Awaitable[None]]) -> int:
        """Re-admit queued requests whose tenant has budget again, in arrival order."""

        async def handle(tenant: str, item: QueuedRequest) -> PumpResult:
            return await self._readmit(tenant, item, send)

        return await self.state.pump(handle, lambda tenant: self.tiers.policy(tenant).tier.priority)

    async def _readmit(
        self, tenant: str, item: QueuedRequest, send: Callable[[list[Effect]], Awaitable[None]]
    ) -> PumpResult:
        decoded = headers.decode_headers(item.headers)
        reply_key = decoded.get(REPLY_KEY)  # what admission gave it when it was queued
        request = decide(item.value, decoded, now_ms=0, limits=self.limits)
        if not isinstance(request, Admit):
            return PumpResult(done=True)  # it was valid when queued; cannot happen
        req = request.request
        policy = self.tiers.policy(tenant)
        now = self.clock_ms()
        if self.cancels is not None and await self.cancels.cancelled(tenant, req.request_id):
            await send(queued_cancel(req, reply_key))
            return PumpResult(done=True)
        if req.deadline_ms is not None and req.deadline_ms <= now:
            waited = now - item.enqueued_ms
            message = f"deadline passed after {waited} ms in the delay queue"
            await send(signed(refuse(req, policy, ErrorCode.DEADLINE_EXCEEDED, message), reply_key))
            return PumpResult(done=True)
        tokens = reserved_tokens(req)
        decision = await self.state.limiter.acquire(tenant, policy.tier, tokens)  # pump() guards it
        if not decision.allowed:
            return PumpResult(done=False, retry_after_ms=decision.retry_after_ms)
        status = decision.status(policy.tier)
        began = time.time() * 1000
        entry = await self._cache_entry(req)
        hdrs = item.headers
        effects = await self._after_limit(req, policy, tokens, item.value, hdrs, status, began, entry)
        await send(signed(effects, reply_key))
        return PumpResult(done=True)

    async def refresh_served(self) -> None:
        await self.state.refresh_served(list(self.router.partitions))

    async def refresh_breakers(self) -> None:
        for name, snap in (await self.state.refresh_breakers()).items():
            region, _, model = name.partition("/")
            for state in State:
                metrics.BREAKER_STATE.labels(region, model, state.value).set(1 if snap.state is state else 0)
