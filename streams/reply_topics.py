"""Admission's check of reply addresses against the cluster's metadata (see
``schemas.reply_check``), without ever blocking the agent for long: a lookup runs off
the event loop and is given ``LOOKUP_TIMEOUT_S``; an address that cannot be checked
in time is taken as answerable, and the bounded send in ``app.py`` catches the rest."""

from __future__ import annotations

import asyncio

import structlog
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from kinfer.schemas import ReplyAddress, TopicNames
from kinfer.schemas.kafka_client import KafkaConnection, client_config
from kinfer.schemas.reply_check import PartitionCounts, unanswerable

log = structlog.get_logger(__name__)

LOOKUP_TIMEOUT_S = 2.0


class ReplyTopics:
    def __init__(self, kafka: KafkaConnection, names: TopicNames) -> None:
        self.names = names
        self.counts = PartitionCounts()
        self._admin = AdminClient(client_config(kafka))

    async def why_unanswerable(self, address: ReplyAddress) -> str | None:
        if self.names.owns(address.topic):
            return unanswerable(address, self.names, None)
        fresh, count = self.counts.fresh(address)
        if not fresh:
            try:
                lookup = asyncio.to_thread(self._lookup, address.topic)
                count = await asyncio.wait_for(lookup, LOOKUP_TIMEOUT_S)
            except (TimeoutError, KafkaException) as exc:
                log.warning("admission.reply_lookup_failed", topic=address.topic, error=str(exc))
                return None
            self.counts.put(address.topic, count)
        return unanswerable(address, self.names, count)

    def _lookup(self, topic: str) -> int | None:
        meta = self._admin.list_topics(topic, timeout=LOOKUP_TIMEOUT_S).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            return None
        return len(meta.partitions)
