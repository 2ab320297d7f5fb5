"""Whether admission's own answer to a request reached its reply partition.

Admission answers some requests itself (cache hits, refusals), and those answers are not
in a transaction with its consumed offsets. So each answer is marked *pending* (where it
goes, and when) before it is sent, and *done* once it is acked. After a crash, Faust
redelivers what was not committed; a redelivered request whose mark is still pending
looks for its answer on the reply partition, from the mark's time on: found, it is not
answered again; not found, it was never sent and is decided again.
"""

from __future__ import annotations

import asyncio
import time

from confluent_kafka import Consumer, KafkaException, TopicPartition

from kinfer.schemas import ReplyAddress, headers
from kinfer.schemas.kafka_client import KafkaConnection, client_config, take_available

LOOKUP_TIMEOUT_S = 10.0
SLACK_MS = 2_000
"""Read from this long before the mark: broker and admission clocks differ a little."""


class AnswerLedger:
    def __init__(self, kafka: KafkaConnection) -> None:
        self.kafka = kafka

    async def was_answered(self, address: ReplyAddress, request_id: str, since_ms: int) -> bool:
        """True when a record for ``request_id`` is on ``address`` at or after ``since_ms``. When the
        partition cannot be read, True: a second answer is worse than a lookup that failed."""
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(self._scan, address, request_id, since_ms), LOOKUP_TIMEOUT_S
            )
        except (TimeoutError, KafkaException):
            return True

    def _scan(self, address: ReplyAddress, request_id: str, since_ms: int) -> bool:
        consumer = Consumer(
            client_config(self.kafka, {"group.id": "kinfer-answer-ledger", "enable.auto.commit": False})
        )
        topic, partition = address.topic, address.partition
        try:
            (start,) = consumer.offsets_for_times([TopicPartition(topic, partition, since_ms - SLACK_MS)], 5)
            _, end = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=5)
            if start.offset < 0 or start.offset >= end:
                return False  # nothing written there since the mark
            consumer.assign([TopicPartition(topic, partition, start.offset)])
            wanted = request_id.encode()
            deadline = time.monotonic() + LOOKUP_TIMEOUT_S
            while time.monotonic() < deadline:
                for record in take_available(consumer, 500, 0.5):
                    if (
                        record.error() is None
                        and dict(record.headers() or []).get(headers.REQUEST_ID) == wanted
                    ):
                        return True
                (position,) = consumer.position([TopicPartition(topic, partition)])
                if position.offset >= end:
                    return False
            return True  # not read to the end in time: take it as answered
        finally:
            consumer.close()
