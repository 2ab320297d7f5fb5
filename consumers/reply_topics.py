"""A worker's check of reply addresses (see ``schemas.reply_check``): answering a request
whose reply partition does not exist would fail every transaction that carries the answer,
and with it every other answer in it, again on each retry.

Counts come from the worker's own consumer's metadata. An address whose delivery failed
for good (the topic or partition vanished after triage) is remembered as undeliverable
for a while, so the re-read record is dead-lettered instead of answered again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec
import structlog
from confluent_kafka import KafkaError, KafkaException

from kinfer.schemas import ReplyAddress, TopicNames
from kinfer.schemas.reply_check import KNOWN_FOR_S, PartitionCounts, missing, unanswerable

log = structlog.get_logger(__name__)

PERMANENT = frozenset(
    {KafkaError._UNKNOWN_PARTITION, KafkaError._UNKNOWN_TOPIC, KafkaError.UNKNOWN_TOPIC_OR_PART}
)
"""Delivery errors that retrying the same address cannot cure."""


class ReplyTopics:
    def __init__(
        self,
        names: TopicNames,
        lookup: Callable[[str], int | None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.names = names
        self.lookup = lookup
        self.clock = clock
        self.counts = PartitionCounts(clock)
        self._failed: dict[tuple[str, int], tuple[str, float]] = {}

    def why_unanswerable(self, address: ReplyAddress, via: str | None = None) -> str | None:
        """``via``: the peer region whose client it is; the answer then goes to ``address``'s
        return topic for that peer (``consumers/return_path.py``), which must exist here."""
        if self.names.owns(address.topic):
            return unanswerable(address, self.names, None)
        if via is None:
            return self._missing(address)
        routed = msgspec.structs.replace(address, topic=self.names.to_region(via, address.topic))
        why = self._missing(routed)
        return None if why is None else f"{why} (answers on {address.topic} for {via}'s clients go there)"

    def _missing(self, address: ReplyAddress) -> str | None:
        failed = self._failed.get((address.topic, address.partition))
        if failed is not None and self.clock() - failed[1] < KNOWN_FOR_S:
            return failed[0]
        fresh, count = self.counts.fresh(address)
        if not fresh:
            try:
                count = self.lookup(address.topic)
            except KafkaException as exc:  # unknown for now: let it through; a failed delivery marks it
                log.warning("worker.reply_lookup_failed", topic=address.topic, error=str(exc.args[0]))
                return None
            self.counts.put(address.topic, count)
        return missing(address, count)

    def delivery_failed(self, topic: str, partition: int, error: KafkaError) -> None:
        """Called from delivery reports: a permanent failure makes the address undeliverable."""
        if error.code() in PERMANENT:
            why = f"the answer could not be delivered to {topic}[{partition}]: {error.str()}"
            self._failed[(topic, partition)] = (why, self.clock())
