"""Commits on a thread of their own while the model keeps decoding.

A Kafka transaction costs the worker several broker round trips (add partitions, produce,
add offsets, commit); run inline, a busy worker spent about a third of its time waiting for
them. Here at most one transaction is in flight: the loop hands over an outbox, keeps
decoding into the next one, and collects the outcome before it hands over another, so
commits stay in order and an abort is seen before anything after it is sent.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass
from typing import NoReturn

import structlog
from confluent_kafka import Consumer

from kinfer.consumers.batching.offsets import Offsets
from kinfer.consumers.committer import TransactionalCommitter
from kinfer.consumers.outbox import Outbox

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Committed:
    outbox: Outbox
    offsets: Offsets
    ok: bool
    """False: the transaction aborted (see :meth:`TransactionalCommitter.transact`)."""


class TransactionHung(RuntimeError):
    """A transaction has not ended long after its own timeouts. The producer is held by a call
    that will not return (confluentinc/librdkafka#5456, #5511: send_offsets_to_transaction can
    ignore its timeout when the group coordinator's broker dies), so this process cannot
    commit again: it must exit and let its partitions move on."""


TRANSACTION_HUNG_EXIT = 75
"""Exit status of a worker whose producer is stuck (a supervisor restarts it)."""


def exit_stuck(exc: Exception, consumer: Consumer) -> NoReturn:
    """Leave the group if the consumer still can (its partitions then move at once, not after
    the session timeout), then exit without the usual clean-up, which would wait forever on
    the stuck producer call. The open transaction never commits: nothing is lost."""
    log.error("worker.transaction_hung", reason=str(exc), action="exiting: partitions move on")
    leaving = threading.Thread(target=consumer.close, daemon=True)
    leaving.start()
    leaving.join(10)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(TRANSACTION_HUNG_EXIT)


class CommitThread:
    def __init__(self, committer: TransactionalCommitter, *, hang_s: float = 120.0) -> None:
        self.committer = committer
        self.hang_s = hang_s
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="kinfer-commit")
        self._inflight: tuple[Outbox, Offsets, Future[bool]] | None = None
        self._started = 0.0

    @property
    def pending(self) -> bool:
        """A transaction was handed over and its outcome not yet collected."""
        return self._inflight is not None

    @property
    def busy(self) -> bool:
        """A transaction is still running."""
        return self._inflight is not None and not self._inflight[2].done()

    def submit(self, outbox: Outbox, offsets: Offsets, group: object) -> None:
        """``group``: the consumer's group metadata, read on the worker's thread."""
        assert self._inflight is None, "collect the last commit first"
        future = self._pool.submit(self.committer.transact, outbox, offsets, group)
        self._inflight, self._started = (outbox, offsets, future), time.monotonic()

    def collect(self, *, wait: bool) -> Committed | None:
        """The outcome of the transaction in flight, once it ended (waiting for it with ``wait``);
        None when there is none or it is still running. Re-raises what it raised (fenced);
        raises :class:`TransactionHung` once it ran past ``hang_s``."""
        if self._inflight is None:
            return None
        outbox, offsets, future = self._inflight
        left = self.hang_s - (time.monotonic() - self._started)
        if not future.done():
            if not wait and left > 0:
                return None
            finished, _ = wait_for([future], timeout=max(0.0, left))
            if not finished:
                raise TransactionHung(f"a transaction has run for {self.hang_s:.0f} s without ending")
        self._inflight = None
        return Committed(outbox, offsets, future.result())

    def close(self) -> None:
        self._pool.shutdown(wait=True)
