"""Topic names of linked clusters: what MirrorMaker mirrors, and what no answer may name."""

from __future__ import annotations

import pytest

from kinfer.schemas.topics import TopicNames, mirrored

NAMES = TopicNames("kinfer")


def test_workers_read_their_dispatch_topic_and_each_peers_copy_of_it() -> None:
    assert NAMES.dispatch_sources("eu-central", ["us-west", "ap-southeast"]) == [
        "kinfer.dispatch.eu-central",
        "us-west.kinfer.dispatch.eu-central",
        "ap-southeast.kinfer.dispatch.eu-central",
    ]
    assert NAMES.returns("us-west", "kinfer.replies", ["eu-central"]) == [
        "kinfer.replies",
        "eu-central.kinfer.to-us-west.kinfer.replies",
    ]


def test_return_topics_never_have_the_target_as_a_dot_segment() -> None:
    # MirrorMaker 2's DefaultReplicationPolicy reads each dot-separated prefix as a source
    # cluster and skips a topic that "came from" its target (cycle detection).
    for region in ("us-west", "eu-central", "ap-southeast"):
        assert region not in NAMES.to_region(region, "kinfer.replies").split(".")


@pytest.mark.parametrize(
    "topic",
    [
        "kinfer.events",
        "us-west.kinfer.events",
        "kinfer.to-eu-central.kinfer.replies",
        "us-west.kinfer.to-eu-central.kinfer.replies",
        "us-west.kinfer.dispatch.eu-central",
        "heartbeats",
        "us-west.heartbeats",
        "us-west.checkpoints.internal",
        "mm2-offsets.us-west.internal",
    ],
)
def test_no_answer_may_go_to_what_mirrormaker_reads_or_writes(topic: str) -> None:
    assert NAMES.owns(topic)


@pytest.mark.parametrize("topic", ["kinfer.replies", "kinfer.replies.alice", "app.replies", "kinfer.tokens"])
def test_reply_topics_stay_answerable(topic: str) -> None:
    assert not NAMES.owns(topic)


def test_mirrored_names_follow_the_default_replication_policy() -> None:
    assert mirrored("us-west", "kinfer.dispatch.eu-central") == "us-west.kinfer.dispatch.eu-central"
