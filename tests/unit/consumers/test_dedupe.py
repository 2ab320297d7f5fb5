"""A request dispatched twice is answered once: the worker's de-duplication by request id."""

from __future__ import annotations

from kinfer.consumers.batching.offsets import OffsetTracker, Position
from kinfer.consumers.dedupe import RequestDeduplicator
from kinfer.consumers.engine import load_runner
from kinfer.consumers.intake import Duplicate, Intake
from kinfer.consumers.outbox import Job
from kinfer.consumers.reply_topics import ReplyTopics
from kinfer.schemas import InferenceRequest, ReplyAddress, TopicNames, encode, headers
from kinfer.schemas.request_keys import request_key
from tests.samples import ConsumedRecord


def test_remembers_what_was_answered_up_to_its_capacity() -> None:
    dedupe = RequestDeduplicator(capacity=3)
    dedupe.committed(["a", "b"])
    assert dedupe.seen(["a", "b", "c"]) == {"a", "b"}
    dedupe.committed(["c", "d"])  # "a" is the oldest: forgotten
    assert dedupe.seen(["a", "b", "c", "d"]) == {"b", "c", "d"}


def test_in_flight_until_committed_and_free_again_when_dropped() -> None:
    dedupe = RequestDeduplicator()
    assert dedupe.take("r", set()) and not dedupe.take("r", set())
    dedupe.dropped(["r"])  # revoked or aborted: its redelivery is the request itself
    assert dedupe.take("r", set())
    dedupe.committed(["r"])
    assert not dedupe.in_flight("r") and dedupe.seen(["r"]) == {"r"}
    assert not dedupe.take("r", dedupe.seen(["r"]))


def record(rid: str, at: int, tenant: str = "t") -> ConsumedRecord:
    request = InferenceRequest(
        request_id=rid, tenant=tenant, prompt="p", reply_to=ReplyAddress("x.replies", 0)
    )
    return ConsumedRecord(encode(request), at, {headers.REQUEST_ID: rid})


def intake() -> Intake:
    return Intake(load_runner("echo"), ReplyTopics(TopicNames("x"), lambda _topic: 4), RequestDeduplicator())


def test_a_second_copy_is_skipped_in_flight_and_after_its_answer() -> None:
    take = intake()
    offsets = OffsetTracker()
    taken: list[object] = []

    def poll(*records: ConsumedRecord) -> None:
        for r in records:
            offsets.consumed(("x.dispatch.us-west", 0), r.offset())
        for item in take.take_in(list(records), now_ms=0):
            taken.append(item)
            if isinstance(item, Duplicate):  # the worker's outbox.skip, applied when it commits
                offsets.answered(item.source[:2], item.source[2])

    poll(record("r1", 0))
    poll(record("r1", 1))  # while the first waits
    assert [type(t) for t in taken] == [Job, Duplicate]
    # Committed answers are remembered (here: locally; with Redis, by every worker).
    take.dedupe.committed([request_key("t", "r2")])
    poll(record("r2", 2))
    assert isinstance(taken[-1], Duplicate) and not taken[-1].in_flight
    # Two copies in one poll: the first is queued, the second skipped.
    poll(record("r3", 3), record("r3", 4))
    assert [type(t) for t in taken[-2:]] == [Job, Duplicate]
    # Commits stop at the waiting original (offset 0); once it is answered, they pass the copies.
    assert offsets.committable() == {("x.dispatch.us-west", 0): Position(0, (1, 2, 4))}
    offsets.answered(("x.dispatch.us-west", 0), 0)
    assert offsets.committable() == {("x.dispatch.us-west", 0): Position(3, (4,))}


def test_another_tenant_reusing_a_request_id_is_not_a_copy() -> None:
    """Clients choose request ids: one tenant's must never silence another tenant's request."""
    out = intake().take_in([record("same-id", 0, tenant="acme"), record("same-id", 1, tenant="globex")], 0)
    assert [type(o) for o in out] == [Job, Job]
