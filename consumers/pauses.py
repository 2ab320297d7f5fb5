"""Which of a worker's partitions are paused, and why: all of them while the engine server is
away (records wait in Kafka rather than fail), or the fullest ones while the worker holds
``max_waiting`` requests (``batching/bound.py`` picks them). Consumption state only: the
consumer is passed in, since a released worker drops its consumer and makes a new one."""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import Consumer, TopicPartition

from kinfer.consumers.batching.bound import TopicPartitionKey, full_partitions


class Pauses:
    def __init__(self, max_waiting: int) -> None:
        self.max_waiting = max_waiting
        self.engine_away = False
        """Every partition paused while the engine server does not answer."""
        self._full: set[TopicPartitionKey] = set()
        """Partitions paused because the worker holds ``max_waiting`` requests."""

    def pause_all(self, consumer: Consumer) -> None:
        """The engine is away: pause everything assigned (each turn, since a rebalance may
        have brought partitions)."""
        consumer.pause(consumer.assignment())
        self.engine_away = True

    def resume_all(self, consumer: Consumer) -> None:
        """The engine is back: resume everything; the bound pauses the full ones again."""
        consumer.resume(consumer.assignment())
        self.engine_away = False
        self._full = set()

    def bound(self, consumer: Consumer, waiting_sources: Iterable[TopicPartitionKey]) -> None:
        """Pause the partitions holding the most waiting requests while the worker holds
        ``max_waiting``; resume them below it. Records past the bound stay in Kafka."""
        if self.engine_away:
            return  # all paused for the engine: resumed together when it is back
        assigned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
        full = full_partitions(waiting_sources, len(assigned), self.max_waiting, self._full)
        if pause := full - self._full:
            consumer.pause([TopicPartition(t, p) for t, p in pause])
        if resume := (self._full - full) & assigned:
            consumer.resume([TopicPartition(t, p) for t, p in resume])
        self._full = full

    def gone(self, partitions: list[TopicPartition]) -> None:
        """Partitions revoked or lost are no longer this worker's to resume."""
        self._full -= {(tp.topic, tp.partition) for tp in partitions}


def resume_assigned(consumer: Consumer, partitions: list[TopicPartition]) -> None:
    """librdkafka keeps a partition paused across an unassign and an assign: one paused (queue
    full) when lost would, assigned back, never be fetched again. Each starts resumed; the next
    turn pauses it again if still full or the engine is away."""
    if partitions:
        consumer.resume(partitions)


def partition_names(partitions: list[TopicPartition]) -> list[str]:
    return sorted(f"{tp.topic}[{tp.partition}]" for tp in partitions)
