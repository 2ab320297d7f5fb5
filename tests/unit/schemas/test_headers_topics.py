import pytest

from kinfer.schemas import TopicNames, headers


def test_headers_round_trip_and_drop_none() -> None:
    encoded = headers.encode_headers(
        {headers.REQUEST_ID: "r1", headers.DEADLINE_MS: 5, headers.TRACEPARENT: None}
    )
    assert encoded == [("kinfer-request-id", b"r1"), ("kinfer-deadline-ms", b"5")]
    assert headers.decode_headers(encoded) == {"kinfer-request-id": "r1", "kinfer-deadline-ms": "5"}


def test_unreadable_header_values_are_skipped() -> None:
    assert headers.decode_headers([("a", b"\xff"), ("b", None), ("c", b"ok")]) == {"c": "ok"}


def test_reply_address_needs_topic_and_numeric_partition() -> None:
    assert headers.reply_address({headers.REPLY_TOPIC: "r", headers.REPLY_PARTITION: "4"}) == ("r", 4)
    assert headers.reply_address({headers.REPLY_TOPIC: "r", headers.REPLY_PARTITION: "x"}) is None
    assert headers.reply_address({headers.REPLY_PARTITION: "4"}) is None


def test_topic_names_share_one_prefix() -> None:
    names = TopicNames("t1")
    assert [names.requests, names.requests_dlq, names.replies, names.events, names.dispatch("eu")] == [
        "t1.requests",
        "t1.requests.dlq",
        "t1.replies",
        "t1.events",
        "t1.dispatch.eu",
    ]
    with pytest.raises(ValueError, match="prefix"):
        TopicNames("bad prefix!")
