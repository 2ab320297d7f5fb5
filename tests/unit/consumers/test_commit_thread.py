"""The commit thread without Kafka: one transaction in flight, outcomes collected in order,
and a fenced producer's error reaching the worker's thread."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from kinfer.consumers.commit_thread import CommitThread, TransactionHung
from kinfer.consumers.committer import Offsets
from kinfer.consumers.outbox import Outbox
from kinfer.schemas import TopicNames


class GatedCommitter:
    """Commits when the test opens the gate; fails or raises on demand."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.outcome: bool | Exception = True
        self.seen: list[tuple[Offsets, object]] = []

    def transact(self, outbox: Outbox, offsets: Offsets, group: object) -> bool:
        self.seen.append((offsets, group))
        self.gate.wait(5)
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


def outbox() -> Outbox:
    return Outbox(TopicNames("x"), "us-west", "w1", "m")


def test_a_running_commit_is_busy_until_it_ends_then_collected_once() -> None:
    committer = GatedCommitter()
    commits = CommitThread(committer)  # type: ignore[arg-type]
    try:
        box = outbox()
        commits.submit(box, {("x.dispatch.us-west", 0): 7}, "group")
        assert commits.busy and commits.pending
        assert commits.collect(wait=False) is None  # still running: nothing yet
        committer.gate.set()
        done = commits.collect(wait=True)
        assert (
            done is not None
            and done.ok
            and done.outbox is box
            and done.offsets == {("x.dispatch.us-west", 0): 7}
        )
        assert committer.seen == [({("x.dispatch.us-west", 0): 7}, "group")]
        assert not commits.pending and commits.collect(wait=True) is None
    finally:
        commits.close()


def test_a_second_commit_waits_for_the_first_to_be_collected() -> None:
    committer = GatedCommitter()
    committer.gate.set()
    commits = CommitThread(committer)  # type: ignore[arg-type]
    try:
        commits.submit(outbox(), {}, None)
        with pytest.raises(AssertionError, match="collect the last commit first"):
            commits.submit(outbox(), {}, None)
    finally:
        commits.close()


def test_an_abort_and_a_fence_reach_the_worker() -> None:
    committer = GatedCommitter()
    committer.gate.set()
    commits = CommitThread(committer)  # type: ignore[arg-type]
    try:
        committer.outcome = False
        commits.submit(outbox(), {}, None)
        aborted = commits.collect(wait=True)
        assert aborted is not None and not aborted.ok
        committer.outcome = RuntimeError("fenced")
        commits.submit(outbox(), {}, None)
        with pytest.raises(RuntimeError, match="fenced"):
            commits.collect(wait=True)
        assert not commits.pending
    finally:
        commits.close()


def test_a_transaction_past_its_hang_limit_is_reported_stuck_waiting_or_not() -> None:
    """librdkafka#5456: send_offsets_to_transaction may never return once the group
    coordinator's broker died; the worker must learn it, not wait forever."""
    committer = GatedCommitter()  # never opened: the call does not return
    commits = CommitThread(committer, hang_s=0.3)  # type: ignore[arg-type]
    try:
        commits.submit(outbox(), {}, "group")
        assert commits.collect(wait=False) is None  # within the limit: just still running
        with pytest.raises(TransactionHung, match="without ending"):
            commits.collect(wait=True)  # waits out the rest of the limit, no longer
        assert commits.pending  # the stuck transaction is still the one in flight
        with pytest.raises(TransactionHung):
            commits.collect(wait=False)  # past the limit, a loop that does not wait hears it too
    finally:
        committer.gate.set()
        commits.close()


@pytest.mark.parametrize("consumer_close", ["print('left the group', flush=True)", "time.sleep(3600)"])
def test_a_stuck_worker_says_why_leaves_its_group_and_exits_75(consumer_close: str) -> None:
    """The exit a stuck transaction leads to: logged, the group left when the consumer can
    (within 10 s when it cannot), and no clean-up that would wait on the stuck producer."""
    code = (
        "import time, types\n"
        "from kinfer.consumers.commit_thread import TransactionHung, exit_stuck\n"
        f"consumer = types.SimpleNamespace(close=lambda: {consumer_close})\n"
        "exit_stuck(TransactionHung('stuck for 120 s'), consumer)\n"
        "print('not reached')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 75, out
    assert "worker.transaction_hung" in out and "stuck for 120 s" in out and "not reached" not in out
    assert ("left the group" in out) == consumer_close.startswith("print")
