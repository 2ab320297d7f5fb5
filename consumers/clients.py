"""The worker's Kafka clients, built from its config when first used (so a worker can be
built, and its parts tested, with no broker), and rebuilt when they must be."""

from __future__ import annotations

import functools

import structlog
from confluent_kafka import Consumer, Producer

from kinfer.consumers.config import WorkerConfig
from kinfer.schemas.kafka_client import client_config

log = structlog.get_logger(__name__)


TRANSACTIONAL_PRODUCER = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 2,
    # A transaction begun while the coordinator still writes the last one's markers (the
    # consumer-offsets one is slow) is refused with CONCURRENT_TRANSACTIONS and retried after
    # this backoff: librdkafka's 100 ms default added about that to an answer after a recent
    # one. Exponential up to the max, so an outage is not hammered.
    "retry.backoff.ms": 2,
    "retry.backoff.max.ms": 1000,
}
"""How a worker's reply producer sends, beside its transactional id and timeout."""


class WorkerClients:
    def __init__(self, config: WorkerConfig) -> None:
        self.config = config

    @functools.cached_property
    def consumer(self) -> Consumer:
        """Joins the region's worker group; reads only committed records."""
        c = self.config
        return Consumer(
            client_config(
                c.kafka,
                {
                    "group.id": c.consumer_group,
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                    "isolation.level": "read_committed",
                    "partition.assignment.strategy": "cooperative-sticky",
                    "client.id": c.worker_id,
                    "session.timeout.ms": c.session_timeout_ms,
                    "heartbeat.interval.ms": max(500, c.session_timeout_ms // 5),
                },
            )
        )

    @functools.cached_property
    def producer(self) -> Producer:
        """Transactional: answers, events and offsets commit together."""
        c = self.config
        return Producer(
            client_config(
                c.kafka,
                {
                    "transactional.id": f"{c.consumer_group}.{c.worker_id}",
                    "transaction.timeout.ms": c.transaction_timeout_ms,
                    **TRANSACTIONAL_PRODUCER,
                    "client.id": c.worker_id,
                },
            )
        )

    @functools.cached_property
    def chunk_producer(self) -> Producer:
        """Token chunks, outside the transactions (see ``chunks.py``)."""
        c = self.config
        settings = {"enable.idempotence": True, "linger.ms": 0, "client.id": f"{c.worker_id}-chunks"}
        return Producer(client_config(c.kafka, settings))

    def connected(self, name: str) -> bool:
        """Whether a client was built (tests check that building a worker connects nowhere)."""
        return name in self.__dict__

    def replace_producer(self) -> Producer:
        """A producer left unusable (a fatal error, e.g. after its transaction coordinator died
        mid-commit) is replaced: the new one, with the same transactional id, aborts whatever
        the old one left open and goes on."""
        log.warning("worker.producer_replaced")
        del self.__dict__["producer"]
        self.producer.init_transactions(60)
        return self.producer

    def drop_consumer(self) -> None:
        """A released worker's consumer is closed; a fresh one joins at the next promotion."""
        self.__dict__.pop("consumer", None)
