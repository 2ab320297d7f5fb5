"""Reading whole topics to their current ends (audits, benchmarks): no group, no commits."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from confluent_kafka import Consumer, Message, TopicPartition

from kinfer.schemas.kafka_client import KafkaConnection, client_config


def read_topics(
    kafka: KafkaConnection, wanted: Callable[[str], bool], timeout_s: float, *, committed: bool = True
) -> Iterator[Message]:
    """Every record of every ``wanted`` topic, from the start to the ends they had when asked;
    ``committed=False`` includes aborted transactions' records (stored all the same).

    Ends are compared with the consumer's position, not record offsets: the last offset of a
    transactional partition is a commit marker, never delivered.
    """
    isolation = "read_committed" if committed else "read_uncommitted"
    consumer = Consumer(
        client_config(
            kafka, {"group.id": "kinfer-reader", "enable.auto.commit": False, "isolation.level": isolation}
        )
    )
    try:
        meta = consumer.list_topics(timeout=timeout_s).topics
        parts = [TopicPartition(t, p, 0) for t, m in meta.items() if wanted(t) for p in m.partitions]
        ends = {
            (tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=timeout_s)[1] for tp in parts
        }
        parts = [tp for tp in parts if ends[(tp.topic, tp.partition)] > 0]
        if not parts:
            return
        consumer.assign(parts)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            record = consumer.poll(0.2)
            if record is not None and record.error() is None:
                yield record
                continue
            positions = consumer.position(parts)
            if all(tp.offset >= ends[(tp.topic, tp.partition)] for tp in positions):
                return
        raise TimeoutError(f"could not read every topic of {kafka.bootstrap_servers} within {timeout_s:g}s")
    finally:
        consumer.close()
