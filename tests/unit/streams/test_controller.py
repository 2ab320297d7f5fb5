"""Every admission decision path, without services: the controller with fakes at its seams
(``streams/seams.py``) and a fixed clock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Literal

import pytest
import redis

from kinfer.schemas import (
    Choice,
    ErrorCode,
    ErrorReply,
    InferenceRequest,
    InferenceResult,
    ReplyAddress,
    SamplingParams,
    TokenChunk,
    TokenLogprob,
    TopicNames,
    Usage,
    encode,
    headers,
)
from kinfer.schemas.cache import cache_key
from kinfer.schemas.request_keys import request_key
from kinfer.schemas.serving import WorkerHeartbeat
from kinfer.streams.admission import AdmissionLimits
from kinfer.streams.breakers.state import BreakerConfig, Snapshot, State, Verdict
from kinfer.streams.controller import AdmissionController
from kinfer.streams.delay_queue import PumpResult, QueuedRequest
from kinfer.streams.effects import Answer, Effect, Forward, Letter, PendingAnswer, Remember, Withdraw
from kinfer.streams.limits.limiter import LocalLimiter
from kinfer.streams.limits.reservations import Reservation
from kinfer.streams.limits.tiers import ReloadingTierTable
from kinfer.streams.redis_health import RedisHealth
from kinfer.streams.routing.regions import RegionRouter

NOW = 1_000_000
TIERS = """
[tenants.paid]
tier = "pro"
[tenants.pinned]
tier = "pro"
residency = "eu"
[tenants.nowhere]
tier = "pro"
residency = "apac"
"""


class FakeBreakers:
    def __init__(self) -> None:
        self.cfg = BreakerConfig()
        self.view: dict[str, Snapshot] = {}
        self.probe = Verdict(True, probe=True)

    async def admit(self, _name: str, _now_ms: int) -> Verdict:
        return self.probe

    async def load_all(self) -> dict[str, Snapshot]:
        return dict(self.view)


class FakeDelay:
    def __init__(self) -> None:
        self.queues: dict[str, list[QueuedRequest]] = {}

    async def enqueue(self, tenant: str, item: QueuedRequest, _retry_after_ms: int, _now_ms: int) -> int:
        self.queues.setdefault(tenant, []).append(item)
        return len(self.queues[tenant])

    async def waiting(self, tenant: str) -> int:
        return len(self.queues.get(tenant, []))

    async def pump(
        self,
        handle: Callable[[str, QueuedRequest], Awaitable[PumpResult]],
        _now_ms: int,
        _max_tenants: int = 32,
        band: Callable[[str], int] = lambda _: 0,
    ) -> int:
        done = 0
        for tenant, items in sorted(self.queues.items(), key=lambda kv: -band(kv[0])):
            while items and (await handle(tenant, items[0])).done:
                items.pop(0)
                done += 1
        return done


class FakeStore:
    def __init__(self) -> None:
        self.decided_keys: set[str] = set()
        self.pending: dict[str, PendingAnswer] = {}
        self.cache: dict[str, bytes] = {}
        self.reservations: dict[str, Reservation] = {}
        self.beats: dict[str, dict[str, WorkerHeartbeat]] = {}
        self.down = False

    async def decision(self, tenant: str, request_id: str) -> Literal["done"] | PendingAnswer | None:
        self._check()
        key = request_key(tenant, request_id)
        return "done" if key in self.decided_keys else self.pending.get(key)

    async def remember(self, key: str, pending: PendingAnswer | None = None) -> None:
        if pending is None:
            self.pending.pop(key, None)
            self.decided_keys.add(key)
        else:
            self.pending[key] = pending

    async def withdraw(self, key: str) -> None:
        self.decided_keys.add(key)

    async def cached(self, key: str) -> bytes | None:
        self._check()
        return self.cache.get(key)

    async def reserve(self, tenant: str, request_id: str, reservation: Reservation) -> None:
        self.reservations[request_key(tenant, request_id)] = reservation

    async def heartbeats(self, regions: list[str]) -> dict[str, dict[str, WorkerHeartbeat]]:
        return {r: self.beats.get(r, {}) for r in regions}

    def _check(self) -> None:
        if self.down:
            raise redis.ConnectionError("Redis is away")


class FakeLedger:
    def __init__(self) -> None:
        self.sent: set[str] = set()

    async def was_answered(self, _address: ReplyAddress, request_id: str, _since_ms: int) -> bool:
        return request_id in self.sent


class FakeReplies:
    def __init__(self) -> None:
        self.unanswerable: set[str] = set()

    async def why_unanswerable(self, address: ReplyAddress) -> str | None:
        return f"reply topic {address.topic} does not exist" if address.topic in self.unanswerable else None


class Admission:
    """The controller and its fakes, and a way to send it records."""

    def __init__(self, tmp_path: Path) -> None:
        tiers = tmp_path / "tiers.toml"
        tiers.write_text(TIERS)
        self.breakers, self.delay, self.store, self.replies = (
            FakeBreakers(),
            FakeDelay(),
            FakeStore(),
            FakeReplies(),
        )
        self.ledger = FakeLedger()
        self.limiter = LocalLimiter()
        weights = {"us-west": 60.0, "eu-central": 25.0}
        self.controller = AdmissionController(
            names=TopicNames("k"),
            limits=AdmissionLimits(max_prompt_bytes=10_000, max_new_tokens=512),
            router=RegionRouter(weights, {"us-west": 3, "eu-central": 3}),
            tiers=ReloadingTierTable(tiers),
            limiter=self.limiter,
            breakers=self.breakers,
            delay=self.delay,
            store=self.store,
            reply_topics=self.replies,
            ledger=self.ledger,
            health=RedisHealth(clock=lambda: 0.0),
            clock_ms=lambda: NOW,
        )

    def admit(
        self, value: bytes, hdrs: list[tuple[str, bytes]] | None = None, offset: int = 0
    ) -> list[Effect]:
        return asyncio.run(self.controller.admit(value, hdrs or [], ("k.requests", 0, offset)))

    def request(self, rid: str = "r1", tenant: str = "t", **kw: object) -> bytes:
        fields: dict[str, object] = {
            "request_id": rid,
            "tenant": tenant,
            "prompt": "hello",
            "reply_to": ReplyAddress("k.replies", 1),
            **kw,
        }
        return encode(InferenceRequest(**fields))  # type: ignore[arg-type]


@pytest.fixture
def admission(tmp_path: Path) -> Admission:
    return Admission(tmp_path)


def answer(effects: list[Effect]) -> ErrorReply | InferenceResult | TokenChunk:
    (found,) = [e.reply for e in effects if isinstance(e, Answer)]
    return found


def test_a_valid_request_is_forwarded_reserved_and_remembered(admission: Admission) -> None:
    effects = admission.admit(admission.request())
    forward, remember = effects
    assert isinstance(forward, Forward) and forward.topic == f"k.dispatch.{forward.region}"
    assert isinstance(remember, Remember) and remember.key == request_key("t", "r1")
    assert (dict(forward.headers)[headers.RATE_LIMIT]).startswith(b"{")  # the status travels on
    assert admission.store.reservations[request_key("t", "r1")].tokens == len("hello") + 1 + 64


def test_a_request_id_already_decided_is_dropped(admission: Admission) -> None:
    admission.store.decided_keys.add(request_key("t", "r1"))
    assert admission.admit(admission.request()) == []


def test_free_tier_over_its_burst_is_rate_limited_with_the_wait(admission: Admission) -> None:
    for i in range(200):  # the free tier's burst
        assert isinstance(admission.admit(admission.request(f"ok{i}"))[0], Forward)
    refused = answer(admission.admit(admission.request("over")))
    assert isinstance(refused, ErrorReply) and refused.code is ErrorCode.RATE_LIMITED
    assert refused.retry_after_ms and refused.rate_limit is not None


def test_paid_tier_over_its_limit_waits_in_the_delay_queue(admission: Admission) -> None:
    pro = admission.controller.tiers.policy("paid").tier
    asyncio.run(admission.limiter.acquire("paid", pro, pro.token_burst))  # the token bucket is spent
    effects = admission.admit(admission.request("q1", tenant="paid"))
    assert [type(e) for e in effects] == [Remember] and len(admission.delay.queues["paid"]) == 1
    # Re-admitted by the pump once the budget is back, in order; the queue empties.
    sent: list[Effect] = []

    async def send(effects: list[Effect]) -> None:
        sent.extend(effects)

    asyncio.run(admission.limiter.settle("paid", pro, pro.token_burst))  # the budget is given back
    assert asyncio.run(admission.controller.pump_delay_queue(send)) == 1
    assert isinstance(sent[0], Forward) and admission.delay.queues["paid"] == []


def test_a_cached_answer_is_served_without_a_worker_and_streams_as_one_chunk(admission: Admission) -> None:
    cached = InferenceResult(
        request_id="old", text="cached!", finish_reason="stop", usage=Usage(1, 2), model="m"
    )
    for rid, stream in (("c1", False), ("c2", True)):
        value = admission.request(rid, stream=stream)
        key = cache_key(
            InferenceRequest(
                request_id=rid,
                tenant="t",
                prompt="hello",
                reply_to=ReplyAddress("k.replies", 1),
                stream=stream,
            )
        )
        assert key is not None
        admission.store.cache[key] = encode(cached)
        effects = admission.admit(value)
        answers = [e.reply for e in effects if isinstance(e, Answer)]
        assert isinstance(answers[-1], InferenceResult) and answers[-1].worker_id == "cache"
        assert answers[-1].request_id == rid and answers[-1].rate_limit is not None
        assert not any(isinstance(e, Forward) for e in effects)
        if stream:
            assert isinstance(answers[0], TokenChunk) and answers[0].text == "cached!"


def test_a_cached_answer_streams_every_choice_with_its_logprobs(admission: Admission) -> None:
    logprobs = (TokenLogprob("a", -0.5),)
    cached = InferenceResult(
        request_id="old",
        text="a",
        finish_reason="stop",
        usage=Usage(1, 2),
        model="m",
        logprobs=logprobs,
        choices=(Choice(index=1, text="b", finish_reason="length", completion_tokens=1),),
    )
    value = admission.request("c3", stream=True)
    key = cache_key(
        InferenceRequest(
            request_id="c3", tenant="t", prompt="hello", reply_to=ReplyAddress("k.replies", 1), stream=True
        )
    )
    assert key is not None
    admission.store.cache[key] = encode(cached)
    answers = [e.reply for e in admission.admit(value) if isinstance(e, Answer)]
    chunks = [a for a in answers if isinstance(a, TokenChunk)]
    assert [(c.index, c.choice, c.text, c.logprobs) for c in chunks] == [
        (0, 0, "a", logprobs),
        (1, 1, "b", None),
    ]
    assert chunks[0].rate_limit is not None and chunks[1].rate_limit is None
    assert all(c.request_id == "c3" for c in chunks) and isinstance(answers[-1], InferenceResult)


def test_an_open_breaker_fails_over_and_all_open_is_unavailable(admission: Admission) -> None:
    first = admission.admit(admission.request("a"))[0]
    assert isinstance(first, Forward)
    admission.breakers.view = {f"{first.region}/": Snapshot(state=State.OPEN, opened_at_ms=NOW)}
    asyncio.run(admission.controller.refresh_breakers())
    moved = admission.admit(admission.request("b"))[0]
    assert isinstance(moved, Forward) and moved.region != first.region
    admission.breakers.view = {
        f"{r}/": Snapshot(state=State.OPEN, opened_at_ms=NOW) for r in ("us-west", "eu-central")
    }
    asyncio.run(admission.controller.refresh_breakers())
    refused = answer(admission.admit(admission.request("c")))
    assert (
        isinstance(refused, ErrorReply) and refused.code is ErrorCode.UNAVAILABLE and refused.retry_after_ms
    )


def test_residency_pins_the_region_or_refuses(admission: Admission) -> None:
    pinned = admission.admit(admission.request("p", tenant="pinned"))[0]
    assert isinstance(pinned, Forward) and pinned.region == "eu-central"
    refused = answer(admission.admit(admission.request("n", tenant="nowhere")))
    assert isinstance(refused, ErrorReply) and refused.code is ErrorCode.UNAVAILABLE
    assert "residency 'apac'" in refused.message


def test_a_model_no_live_worker_serves_is_refused_and_serving_regions_come_first(
    admission: Admission,
) -> None:
    admission.store.beats = {
        "eu-central": {"w1": WorkerHeartbeat(state="active", last_seen_ms=NOW, model="m1")}
    }
    asyncio.run(admission.controller.refresh_served())
    refused = answer(admission.admit(admission.request("x", model="gpt-4")))
    assert isinstance(refused, ErrorReply) and refused.code is ErrorCode.INVALID_REQUEST
    assert "live workers serve: m1" in refused.message
    for i in range(20):  # whatever the ring says, the region with a live worker takes it
        forward = admission.admit(admission.request(f"m{i}", user=f"user-{i}", model="m1"))[0]
        assert isinstance(forward, Forward) and forward.region == "eu-central"


def test_unanswerable_and_malformed_records(admission: Admission) -> None:
    admission.replies.unanswerable.add("gone.replies")
    effects = admission.admit(admission.request("g", reply_to=ReplyAddress("gone.replies", 0)))
    assert [type(e) for e in effects] == [Letter, Remember]  # a dead letter, no answer
    hdrs = [
        (headers.REQUEST_ID, b"bad"),
        (headers.REPLY_TOPIC, b"k.replies"),
        (headers.REPLY_PARTITION, b"1"),
    ]
    effects = admission.admit(b"{not json", hdrs)
    reply = answer(effects)
    assert (
        isinstance(reply, ErrorReply)
        and reply.code is ErrorCode.INVALID_REQUEST
        and reply.request_id == "bad"
    )
    assert any(isinstance(e, Letter) for e in effects)


def test_a_passed_deadline_and_an_over_budget_request_are_refused(admission: Admission) -> None:
    late = answer(admission.admit(admission.request("late", deadline_ms=NOW - 1)))
    assert isinstance(late, ErrorReply) and late.code is ErrorCode.DEADLINE_EXCEEDED
    huge = answer(admission.admit(admission.request("huge", sampling=SamplingParams(max_tokens=513))))
    assert isinstance(huge, ErrorReply) and huge.code is ErrorCode.INVALID_REQUEST


def test_with_redis_away_limits_hold_locally_and_nothing_is_cached(admission: Admission) -> None:
    admission.store.down = True
    effects = admission.admit(admission.request("d1"))
    assert isinstance(effects[0], Forward)  # admitted on the local bucket, decided again later


def test_failures_become_internal_answers_and_undeliverable_effects_are_replaced(
    admission: Admission,
) -> None:
    value = admission.request("f1")
    effects = admission.controller.failed(value, [], ("k.requests", 0, 9), RuntimeError("bug"))
    reply = answer(effects)
    assert (
        isinstance(reply, ErrorReply) and reply.code is ErrorCode.INTERNAL and "RuntimeError" in reply.message
    )
    assert any(isinstance(e, Letter) for e in effects)
    forward = admission.admit(admission.request("f2"))[0]
    instead = admission.controller.undeliverable(forward, "broker away", value, ("k.requests", 0, 10))
    assert [type(e) for e in instead] == [Withdraw, Answer, Letter]
    withdraw, unavailable, letter = instead
    # A timed-out forward may still land: workers are told to drop it before the client is answered.
    assert isinstance(withdraw, Withdraw) and withdraw.key == request_key("t", "f2")
    assert isinstance(unavailable, Answer) and unavailable.reply.code is ErrorCode.UNAVAILABLE  # type: ignore[union-attr]
    assert admission.controller.undeliverable(unavailable, "gone", value, ("k.requests", 0, 10)) != []
    for effect in (withdraw, letter):
        assert admission.controller.undeliverable(effect, "gone", value, ("k.requests", 0, 10)) == []


def test_an_answer_of_admissions_own_is_marked_pending_before_it_is_sent(admission: Admission) -> None:
    effects = admission.admit(admission.request("late", deadline_ms=NOW - 1))
    assert [type(e) for e in effects] == [Remember, Answer, Remember]
    pending, _, done = effects
    assert isinstance(pending, Remember) and pending.pending == PendingAnswer("k.replies", 1, NOW)
    assert isinstance(done, Remember) and done.pending is None


def test_a_redelivery_after_a_crash_mid_answer_is_answered_only_if_the_answer_never_went_out(
    admission: Admission,
) -> None:
    key = request_key("t", "r1")
    admission.store.pending[key] = PendingAnswer("k.replies", 1, NOW)  # crashed between the two marks
    admission.ledger.sent.add("r1")  # ... after the answer reached the partition
    assert admission.admit(admission.request("r1")) == []
    assert key in admission.store.decided_keys  # settled: the next copy needs no lookup
    admission.store.pending[request_key("t", "r2")] = PendingAnswer("k.replies", 1, NOW)  # never sent
    assert isinstance(admission.admit(admission.request("r2"))[0], Forward)
