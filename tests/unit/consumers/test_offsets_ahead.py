"""The records answered ahead of a partition's committed offset travel in the commit's metadata,
so the partition's next owner skips them even when the worker died before Redis heard of them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kinfer.consumers.batching.offsets import (
    MAX_METADATA_CHARS,
    METADATA_TAG,
    OffsetTracker,
    Position,
    decode_ahead,
    encode_ahead,
)

TP = ("x.dispatch.us-west", 0)


def test_answers_ahead_of_an_open_record_are_committed_as_they_come() -> None:
    t = OffsetTracker()
    for offset in range(10, 14):
        t.consumed(TP, offset)
    t.answered(TP, 12)
    assert t.committable() == {TP: Position(10, (12,))}
    t.mark_committed(t.committable())
    t.answered(TP, 11)  # the position is still 10, but what is ahead of it changed
    assert t.committable() == {TP: Position(10, (11, 12))}
    t.mark_committed(t.committable())
    t.answered(TP, 10)
    assert t.committable() == {TP: Position(13)}


def test_the_next_owner_skips_what_the_last_one_answered_and_keeps_saying_so() -> None:
    t = OffsetTracker()
    t.inherit(TP, Position(10, (12, 13)))
    assert t.answered_before(TP, 12) and t.answered_before(TP, 13)
    assert not t.answered_before(TP, 10) and not t.answered_before(TP, 11)
    for offset in range(10, 15):
        t.consumed(TP, offset)
    t.answered(TP, 12)  # skipped: the worker's outbox marks it answered
    t.answered(TP, 13)
    assert t.committable() == {}  # nothing new: the committed position says all of it
    t.answered(TP, 10)  # 11 is still open: 12 and 13 stay named, or a third owner redoes them
    assert t.committable() == {TP: Position(11, (12, 13))}
    t.mark_committed(t.committable())
    t.answered(TP, 11)
    t.answered(TP, 14)
    assert t.committable() == {TP: Position(15)}
    t.mark_committed(t.committable())
    assert not t.answered_before(TP, 12)  # behind the position now: never read again
    t.forget([TP])
    assert t.committable() == {} and t.pending() == 0


def test_runs_are_written_relative_to_the_position() -> None:
    position = Position(1000, (1001, 1002, 1003, 1007, 1009, 1010))
    assert encode_ahead(position) == f"{METADATA_TAG}1-3,7,9-10"
    assert decode_ahead(1000, encode_ahead(position)) == position
    assert encode_ahead(Position(5)) == ""


def test_metadata_not_written_by_a_worker_counts_as_none() -> None:
    garbled = (f"{METADATA_TAG}x", f"{METADATA_TAG}3-1", f"{METADATA_TAG}-2")
    for foreign in (None, "", "some tool's note", *garbled):
        assert decode_ahead(7, foreign) == Position(7)
    assert decode_ahead(7, f"{METADATA_TAG}0-99999999") == Position(7)  # not ours: too many


@given(
    st.integers(0, 2**40),
    st.sets(st.integers(1, 5000), max_size=800),
)
def test_what_fits_comes_back_and_what_does_not_is_left_out_from_the_top(
    offset: int, deltas: set[int]
) -> None:
    position = Position(offset, tuple(sorted(offset + d for d in deltas)))
    written = encode_ahead(position)
    assert len(written) <= MAX_METADATA_CHARS
    back = decode_ahead(offset, written)
    assert back.offset == offset
    assert back.ahead == position.ahead[: len(back.ahead)]  # a prefix: the lowest are kept
    if len(written) < MAX_METADATA_CHARS - 20:
        assert back == position
