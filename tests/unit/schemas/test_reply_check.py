"""Which reply addresses are answerable, and how long a lookup is trusted."""

from __future__ import annotations

from kinfer.schemas import ReplyAddress, TopicNames
from kinfer.schemas.reply_check import KNOWN_FOR_S, MISSING_FOR_S, PartitionCounts, unanswerable

NAMES = TopicNames("k")


def test_the_pipelines_own_topics_are_never_reply_topics() -> None:
    for topic in ("k.requests", "k.requests.dlq", "k.events", "k.dispatch.us-west", "k.dispatch.x"):
        assert "pipeline's own topic" in (unanswerable(ReplyAddress(topic, 0), NAMES, 16) or "")
    assert unanswerable(ReplyAddress("k.replies", 15), NAMES, 16) is None
    assert unanswerable(ReplyAddress("my.replies", 0), NAMES, 1) is None


def test_missing_topics_and_partitions_are_named() -> None:
    assert unanswerable(ReplyAddress("nope", 0), NAMES, None) == "reply topic nope does not exist"
    assert "16 partitions; 99 is not one" in (unanswerable(ReplyAddress("k.replies", 99), NAMES, 16) or "")


def test_counts_are_trusted_for_a_minute_and_misses_for_seconds() -> None:
    now = [0.0]
    counts = PartitionCounts(clock=lambda: now[0])
    address, beyond, other = ReplyAddress("k.replies", 3), ReplyAddress("k.replies", 40), ReplyAddress("x", 0)
    assert counts.fresh(address) == (False, None)
    counts.put("k.replies", 16)
    counts.put("x", None)
    assert counts.fresh(address) == (True, 16) and counts.fresh(other) == (True, None)
    assert counts.fresh(beyond) == (True, 16)  # partition 40 is known missing, for now
    now[0] = MISSING_FOR_S + 0.1
    assert counts.fresh(address) == (True, 16)
    assert counts.fresh(beyond) == (False, 16) and counts.fresh(other) == (False, None)
    now[0] = KNOWN_FOR_S + 0.1
    assert counts.fresh(address) == (False, 16)
