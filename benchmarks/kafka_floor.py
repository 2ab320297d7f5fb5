"""The floor under kinfer's latency: the same hops with no kinfer logic at all.

A client produces a request; a relay (admission's place: consume, produce to a dispatch topic,
acks=all) forwards it; a replier (the worker's place) answers in a Kafka transaction with the
consumed offset, as kinfer's exactly-once replies do; the client reads the answer
read_committed. Each role is a thread of this process with plain confluent-kafka clients.
What kinfer adds on top of this floor is its own cost; the floor is what exactly-once replies
over this broker cost on this machine.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from benchmarks.stack import end_offset
from kinfer.consumers.clients import TRANSACTIONAL_PRODUCER
from kinfer.schemas.kafka_client import KafkaConnection, client_config, take_available


def _consumer(kafka: KafkaConnection, group: str, **extra: Any) -> Consumer:
    settings = {"group.id": group, "auto.offset.reset": "latest", "enable.auto.commit": False, **extra}
    return Consumer(client_config(kafka, settings))


def _relay(kafka: KafkaConnection, source: str, target: str, stop: threading.Event) -> None:
    consumer = _consumer(kafka, f"floor-relay-{uuid.uuid4().hex}", **{"enable.auto.commit": True})
    producer = Producer(client_config(kafka, {"acks": "all", "linger.ms": 0, "enable.idempotence": True}))
    consumer.subscribe([source])
    while not stop.is_set():
        for record in take_available(consumer, 100, 0.1):
            if record.error() is None:
                producer.produce(target, record.value(), partition=0)
        producer.poll(0)
    producer.flush(5)
    consumer.close()


def _replier(kafka: KafkaConnection, source: str, replies: str, stop: threading.Event) -> None:
    consumer = _consumer(kafka, f"floor-replier-{uuid.uuid4().hex}", **{"isolation.level": "read_committed"})
    settings = {"transactional.id": f"floor-{uuid.uuid4().hex}", **TRANSACTIONAL_PRODUCER}  # a worker's
    producer = Producer(client_config(kafka, settings))
    producer.init_transactions(30)
    consumer.subscribe([source])
    while not stop.is_set():
        records = [r for r in take_available(consumer, 100, 0.1) if r.error() is None]
        if not records:
            continue
        producer.begin_transaction()
        for record in records:
            producer.produce(replies, record.value(), partition=0)
        last = records[-1]
        topic, partition, offset = last.topic(), last.partition(), last.offset()
        assert topic is not None and partition is not None and offset is not None
        offsets = [TopicPartition(topic, partition, offset + 1)]
        producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), 30)
        producer.commit_transaction(30)
    consumer.close()


def floor_latencies(
    kafka: KafkaConnection, *, requests: str, dispatch: str, replies: str, rate: float, n: int
) -> list[float]:
    """End-to-end ms of ``n`` requests at Poisson ``rate`` per second through the bare hops."""
    stop = threading.Event()
    received: dict[bytes, float] = {}
    reader = _consumer(kafka, f"floor-client-{uuid.uuid4().hex}", **{"isolation.level": "read_committed"})
    high = end_offset(reader, replies, 0)
    reader.assign([TopicPartition(replies, 0, high)])

    def read() -> None:
        while not stop.is_set():
            for record in take_available(reader, 100, 0.1):
                if record.error() is None:
                    received[record.value() or b""] = time.perf_counter()

    threads = [
        threading.Thread(target=_relay, args=(kafka, requests, dispatch, stop), daemon=True),
        threading.Thread(target=_replier, args=(kafka, dispatch, replies, stop), daemon=True),
        threading.Thread(target=read, daemon=True),
    ]
    for thread in threads:
        thread.start()
    client = Producer(client_config(kafka, {"acks": "all", "linger.ms": 0, "enable.idempotence": True}))
    try:
        _send_and_wait(client, requests, b"warm-up", received, 30)  # every role is up and assigned
        sent: dict[bytes, float] = {}
        rng = random.Random(7)
        for i in range(n):
            key = f"floor-{i}".encode()
            sent[key] = time.perf_counter()
            client.produce(requests, key, partition=0)
            client.poll(0)
            time.sleep(rng.expovariate(rate))
        deadline = time.monotonic() + 30
        while len(sent.keys() & received.keys()) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return [(received[k] - t) * 1000 for k, t in sent.items() if k in received]
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
        reader.close()


def _send_and_wait(
    client: Producer, topic: str, value: bytes, received: dict[bytes, float], timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while value not in received:
        if time.monotonic() > deadline:
            raise TimeoutError("the bare Kafka relay never answered its warm-up record")
        client.produce(topic, value, partition=0)
        client.flush(5)
        time.sleep(0.5)
