from kinfer.consumers.batching.offsets import OffsetTracker, Position
from kinfer.consumers.batching.waiting import WaitingQueue


def queue() -> WaitingQueue[str]:
    return WaitingQueue(max_tokens=100, max_rows=4, max_wait_ms=50)


def test_idle_engine_waits_for_max_wait_then_takes() -> None:
    q = queue()
    q.add("a", tokens=10, deadline_ms=None, now_ms=0)
    assert q.take(10, rows=0, tokens=0) == []
    assert q.wait_ms(10) == 40
    assert q.take(50, rows=0, tokens=0) == ["a"]


def test_full_budget_or_rows_releases_at_once() -> None:
    q = queue()
    q.add("big", tokens=100, deadline_ms=None, now_ms=0)
    assert q.take(1, rows=0, tokens=0) == ["big"]
    for i in range(4):
        q.add(f"r{i}", tokens=1, deadline_ms=None, now_ms=0)
    assert q.take(1, rows=0, tokens=0) == ["r0", "r1", "r2", "r3"]


def test_earliest_deadline_first_then_arrival() -> None:
    q = queue()
    q.add("late", tokens=1, deadline_ms=None, now_ms=0)
    q.add("soon", tokens=1, deadline_ms=500, now_ms=1)
    q.add("sooner", tokens=1, deadline_ms=200, now_ms=2)
    assert q.take(100, rows=0, tokens=0) == ["sooner", "soon", "late"]


def test_running_engine_takes_what_fits_the_budget_without_waiting() -> None:
    q = queue()
    for name, tokens in (("a", 30), ("b", 50), ("c", 30)):
        q.add(name, tokens=tokens, deadline_ms=None, now_ms=0)
    assert q.take(0, rows=1, tokens=20) == ["a", "b"]
    assert q.take(0, rows=3, tokens=100) == []
    assert q.take(0, rows=3, tokens=70) == ["c"]


def test_a_request_for_n_choices_counts_as_n_rows() -> None:
    q = queue()  # at most 4 rows
    q.add("three", tokens=3, deadline_ms=None, now_ms=0, rows=3)
    q.add("two", tokens=2, deadline_ms=None, now_ms=0, rows=2)
    assert q.take(1, rows=0, tokens=0) == ["three"]  # 5 rows waiting: full, released at once
    assert q.take(1, rows=3, tokens=3) == []  # 3 + 2 > 4
    assert q.take(1, rows=2, tokens=3) == ["two"]
    q.add("eight", tokens=8, deadline_ms=None, now_ms=0, rows=8)
    assert q.take(1, rows=0, tokens=0) == ["eight"]  # more rows than the limit: alone


def test_expired_requests_are_taken_out() -> None:
    q = queue()
    q.add("x", tokens=1, deadline_ms=5, now_ms=0)
    q.add("y", tokens=1, deadline_ms=50, now_ms=0)
    assert q.expired(10) == ["x"] and len(q) == 1


def test_offsets_commit_only_up_to_the_first_unanswered() -> None:
    t = OffsetTracker()
    tp = ("topic", 0)
    for offset in (5, 6, 7):
        t.consumed(tp, offset)
    t.answered(tp, 6)
    t.answered(tp, 7)
    assert t.committable() == {tp: Position(5, (6, 7))}
    t.mark_committed({tp: Position(5, (6, 7))})
    assert t.committable() == {}
    t.answered(tp, 5)
    assert t.committable() == {tp: Position(8)}
    t.forget([tp])
    assert t.committable() == {} and t.pending() == 0


def test_oldest_wait_is_reported_for_the_pool() -> None:
    q = queue()
    assert q.oldest_wait_ms(100) == 0
    q.add("a", tokens=1, deadline_ms=None, now_ms=40)
    q.add("b", tokens=1, deadline_ms=None, now_ms=90)
    assert q.oldest_wait_ms(100) == 60


def test_partitions_at_their_share_of_max_waiting_are_full() -> None:
    from kinfer.consumers.batching.bound import full_partitions

    waiting = [("d", 0)] * 5 + [("d", 1)] * 2 + [("d", 2)] * 4
    assert full_partitions(waiting, assigned=3, max_waiting=12) == {("d", 0), ("d", 2)}  # share 4
    assert full_partitions(waiting, assigned=3, max_waiting=2) == {("d", 0), ("d", 1), ("d", 2)}  # share 1
    assert full_partitions([], assigned=0, max_waiting=256) == set()
    # Once paused, a partition resumes only at half its share: no pause and resume every turn.
    paused = {("d", 0)}
    assert full_partitions([("d", 0)] * 3, assigned=3, max_waiting=12, paused=paused) == paused
    assert full_partitions([("d", 0)] * 2, assigned=3, max_waiting=12, paused=paused) == set()
