"""How the committer reads a fencing error, without Kafka: fenced after the transaction ran
past ``transaction.timeout.ms`` means the coordinator aborted it (a hung broker), and the
worker goes on with a new producer; fenced sooner means another live instance owns the id."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError, KafkaException

from kinfer.consumers.batching.offsets import OffsetTracker
from kinfer.consumers.committer import TransactionalCommitter
from kinfer.consumers.outbox import Outbox
from kinfer.schemas import TopicNames


class FencedProducer:
    """Fails its commit as librdkafka does once the broker answered PRODUCER_FENCED."""

    def __init__(self, clock: list[float], commit_takes_s: float) -> None:
        self.clock = clock
        self.commit_takes_s = commit_takes_s

    def begin_transaction(self) -> None:
        pass

    def commit_transaction(self, timeout: float) -> None:
        self.clock[0] += self.commit_takes_s
        error = KafkaError(KafkaError._FENCED, "fenced by a newer instance", fatal=True)
        raise KafkaException(error)


class Clients:
    def __init__(self, producer: FencedProducer) -> None:
        self.config = SimpleNamespace(transaction_timeout_ms=10_000)
        self.producer = producer
        self.chunk_producer = SimpleNamespace(flush=lambda timeout: 0)
        self.replaced = 0

    def replace_producer(self) -> None:
        self.replaced += 1


def committer(commit_takes_s: float) -> tuple[TransactionalCommitter, Clients]:
    clock = [100.0]
    clients = Clients(FencedProducer(clock, commit_takes_s))
    committer = TransactionalCommitter(
        clients,  # type: ignore[arg-type]
        OffsetTracker(),
        lambda topic, partition, error: None,
        clock=lambda: clock[0],
    )
    return committer, clients


def outbox() -> Outbox:
    return Outbox(TopicNames("x"), "us-west", "w1", "m")


def test_fenced_after_the_transaction_timed_out_aborts_and_replaces_the_producer() -> None:
    commits, clients = committer(commit_takes_s=20.0)  # the broker hung for 20 s, timeout 10 s
    assert commits.transact(outbox(), {}, "group") is False  # aborted: the worker re-reads
    assert clients.replaced == 1


def test_fenced_within_the_timeout_is_another_instance_and_raises() -> None:
    commits, clients = committer(commit_takes_s=0.5)
    with pytest.raises(KafkaException) as raised:
        commits.transact(outbox(), {}, "group")
    assert raised.value.args[0].code() == KafkaError._FENCED
    assert clients.replaced == 0
