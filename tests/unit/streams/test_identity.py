"""A tenant is trusted only when proven: the admission controller with an authenticator, at
its seams' fakes (see ``test_controller.py``). A refusal of what did not prove itself is
withheld (dead letter only): it never lands on the reply topic the record names."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from kinfer.schemas import ErrorCode, ErrorReply, ReplyAddress, headers
from kinfer.schemas.signing import REPLY_KEY, SIGNATURE, reply_key, sign
from kinfer.streams.cancels import CancelDesk
from kinfer.streams.effects import Answer, Effect, Forward, Letter, Remember
from kinfer.streams.identity import Authenticator, Freshness
from tests.unit.streams.test_controller import NOW, Admission

ACME_KEY, OLD_KEY = "a1" * 32, "0f" * 32


class Keys:
    def __init__(self) -> None:
        self.keys = {"acme": [ACME_KEY, OLD_KEY], "t": []}
        self.asked: list[str] = []

    async def live(self, tenant: str) -> list[str]:
        self.asked.append(tenant)
        return self.keys.get(tenant, [])


MAX_AGE_MS, SKEW_MS = 1_800_000, 60_000


@pytest.fixture
def secured(tmp_path: Path) -> Admission:
    admission = Admission(tmp_path)
    admission.controller.authenticator = Authenticator(
        admission.controller.names,
        Keys(),
        private_replies=True,
        freshness=Freshness(MAX_AGE_MS, SKEW_MS),
        clock_ms=lambda: NOW + MAX_AGE_MS,
    )
    return admission


def signed(
    admission: Admission, key: str | None, rid: str = "r1", tenant: str = "acme", **kw: object
) -> list[Effect]:
    kw.setdefault("reply_to", ReplyAddress(f"k.replies.{tenant}", 0))
    kw.setdefault("created_ms", NOW + MAX_AGE_MS - 1000)  # signed a second ago
    value = admission.request(rid, tenant, **kw)
    hdrs = [] if key is None else [(SIGNATURE, sign(key, rid, tenant, None, value).encode())]
    return admission.admit(value, hdrs)


def withheld_count() -> float:
    found = REGISTRY.get_sample_value("kinfer_admission_refusals_withheld_total", {"code": "unauthenticated"})
    return found or 0.0


def withheld(effects: list[Effect]) -> Letter:
    """The only effect of an unproven record: its dead letter; no answer anywhere."""
    (letter,) = effects
    assert isinstance(letter, Letter)
    return letter


def refusal(effects: list[Effect]) -> tuple[Answer, Letter]:
    (answer,) = [e for e in effects if isinstance(e, Answer)]
    (letter,) = [e for e in effects if isinstance(e, Letter)]
    assert isinstance(answer.reply, ErrorReply)
    assert not any(isinstance(e, (Forward, Remember)) for e in effects)  # nothing of the tenant touched
    return answer, letter


def test_a_request_signed_with_a_live_key_is_admitted(secured: Admission) -> None:
    assert isinstance(signed(secured, ACME_KEY)[0], Forward)
    assert isinstance(signed(secured, OLD_KEY, rid="r2")[0], Forward)  # the previous key, mid-rotation


@pytest.mark.parametrize(
    ("key", "tenant", "why"),
    [
        (None, "acme", "not signed"),
        ("ee" * 32, "acme", "does not match"),
        (ACME_KEY, "t", "has no signing key"),  # acme's key, claiming tenant "t"
    ],
)
def test_unproven_tenants_are_refused_unauthenticated_with_a_dead_letter_and_no_answer(
    secured: Admission, key: str | None, tenant: str, why: str
) -> None:
    counted = withheld_count()
    letter = withheld(signed(secured, key, tenant=tenant))
    assert letter.letter.code is ErrorCode.UNAUTHENTICATED and why in letter.letter.reason
    assert withheld_count() == counted + 1
    # The real request with that id is still decided: the forgery marked nothing.
    secured.controller.authenticator = None
    assert isinstance(secured.admit(secured.request("r1", tenant))[0], Forward)


def test_a_forged_request_cannot_spend_the_tenants_quota(secured: Admission) -> None:
    for i in range(300):  # past the free tier's burst of 200, were they admitted
        assert withheld(signed(secured, "ee" * 32, rid=f"f{i}")).letter.code is ErrorCode.UNAUTHENTICATED
    assert isinstance(signed(secured, ACME_KEY, rid="real")[0], Forward)


def test_with_private_replies_a_request_may_name_only_its_own_reply_topic(secured: Admission) -> None:
    gateways = ReplyAddress("k.replies", 3)
    assert isinstance(signed(secured, ACME_KEY, reply_to=gateways)[0], Forward)
    # Refused on the sender's own topic (same partition), signed: never in the topic it named.
    answer, _ = refusal(signed(secured, ACME_KEY, rid="r2", reply_to=ReplyAddress("k.replies.other", 2)))
    assert answer.address == ReplyAddress("k.replies.acme", 2) and answer.reply_key == reply_key(
        ACME_KEY, "r2"
    )
    assert isinstance(answer.reply, ErrorReply) and answer.reply.code is ErrorCode.INVALID_REQUEST
    assert "not tenant 'acme''s reply topic k.replies.acme" in answer.reply.message


def test_an_unreadable_record_on_a_secured_pipeline_is_dead_lettered_and_answered_nowhere(
    secured: Admission,
) -> None:
    named = [(headers.REPLY_TOPIC, b"k.replies.acme"), (headers.REPLY_PARTITION, b"0")]
    letter = withheld(secured.admit(b'{"request_id": "victims-id", "tenant": "acme", "prompt": 7}', named))
    assert letter.letter.code is ErrorCode.INVALID_REQUEST


@pytest.mark.parametrize(
    ("created_ms", "why"),
    [
        (NOW - 1, "older than the 1800 s"),  # past the window: its marks may be gone (a replay)
        (0, "must carry created_ms"),  # an issue time the signature covers is required
        (NOW + MAX_AGE_MS + SKEW_MS + 1, "ahead of admission's clock"),
    ],
)
def test_a_signed_request_outside_its_age_is_refused_as_a_replay(
    secured: Admission, created_ms: int, why: str
) -> None:
    letter = withheld(signed(secured, ACME_KEY, created_ms=created_ms))
    assert letter.letter.code is ErrorCode.UNAUTHENTICATED and why in letter.letter.reason


def test_within_its_age_and_skew_a_signed_request_is_admitted(secured: Admission) -> None:
    assert isinstance(signed(secured, ACME_KEY, rid="old", created_ms=NOW)[0], Forward)  # the window's edge
    ahead = NOW + MAX_AGE_MS + SKEW_MS  # a client clock up to the skew ahead
    assert isinstance(signed(secured, ACME_KEY, rid="ahead", created_ms=ahead)[0], Forward)


def test_the_age_must_stay_inside_the_idempotency_window() -> None:
    with pytest.raises(ValueError, match="under the marks' hour"):
        Freshness(3_550_000, 60_000)


def test_unsigned_requests_pass_when_signatures_are_not_required(tmp_path: Path) -> None:
    admission = Admission(tmp_path)
    admission.controller.authenticator = Authenticator(
        admission.controller.names, None, private_replies=False
    )
    assert isinstance(admission.admit(admission.request("r1", "acme"))[0], Forward)


def test_the_dead_letter_keeps_the_original_record(secured: Admission) -> None:
    value = secured.request("r9", "acme", reply_to=ReplyAddress("k.replies.acme", 0))
    letter = withheld(secured.admit(value, []))
    assert letter.letter.original == value and letter.letter.original_bytes == len(value)


def test_a_proven_requests_answers_are_signed_and_its_worker_gets_the_reply_key(secured: Admission) -> None:
    expected = reply_key(ACME_KEY, "r1")
    forward = signed(secured, ACME_KEY)[0]
    assert isinstance(forward, Forward) and dict(forward.headers)[REPLY_KEY] == expected.encode()
    # A refusal of admission's own (a prompt over the limit) is signed with the same key.
    (answer,) = [
        e for e in signed(secured, ACME_KEY, rid="big", prompt="x" * 20_000) if isinstance(e, Answer)
    ]
    assert answer.reply_key == reply_key(ACME_KEY, "big")
    # Mid-rotation, the key the client signed with is the one its answers are signed with.
    assert dict(signed(secured, OLD_KEY, rid="r2")[0].headers)[REPLY_KEY] == reply_key(OLD_KEY, "r2").encode()  # type: ignore[union-attr]


def test_a_reply_key_a_client_sends_is_dropped(tmp_path: Path) -> None:
    admission = Admission(tmp_path)
    forward = admission.admit(admission.request("r1", "acme"), [(REPLY_KEY, b"chosen-by-the-client")])[0]
    assert isinstance(forward, Forward) and REPLY_KEY not in dict(forward.headers)


async def test_an_unreadable_cancel_is_withheld_at_the_desks_clock(tmp_path: Path) -> None:
    """Tenants must sign, so a cancel that names no tenant it could prove is kept as a dead
    letter stamped by the desk's own clock, and acknowledged nowhere (no Redis is touched)."""
    names = Admission(tmp_path).controller.names

    class Untouched:  # the desk registers its script; nothing may be called
        def register_script(self, _script: str) -> None:
            return None

    desk = CancelDesk(
        cast(Redis, Untouched()),
        names.prefix,
        Authenticator(names, Keys(), private_replies=True),
        lambda: NOW,
    )
    (effect,) = await desk.cancel(b"{not json", {}, (names.requests, 0, 7))
    assert isinstance(effect, Letter)
    assert effect.letter.ts_ms == NOW and effect.letter.code == ErrorCode.INVALID_REQUEST
