"""Which peer regions' clusters are reachable, from MirrorMaker 2's heartbeats.

MirrorMaker emits a heartbeat into every cluster it writes to each second and mirrors each
cluster's heartbeats onward, so ``<peer>.heartbeats`` in this cluster keeps growing while
the peer's cluster is up *and* its flow to here works: exactly the path a forwarded
request's answer takes back. A peer whose newest heartbeat is older than ``down_after_s``
is down; admission routes its users around it (like an open breaker) until heartbeats come
again. Requests already sent there wait in Kafka and are answered when it is back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import structlog
from confluent_kafka import Consumer, KafkaException, TopicPartition

from kinfer.schemas.kafka_client import KafkaConnection, client_config
from kinfer.schemas.topics import HEARTBEATS, mirrored

log = structlog.get_logger(__name__)


class LinkView:
    """Newest heartbeat time per peer; pure, so the rule is tested without a broker."""

    def __init__(self, peers: Iterable[str], down_after_s: float, clock_ms: Callable[[], int]) -> None:
        self.peers = tuple(peers)
        self.down_after_ms = down_after_s * 1000
        self.clock_ms = clock_ms
        self.newest: dict[str, int] = {}

    def saw(self, peer: str, ts_ms: int) -> None:
        self.newest[peer] = max(ts_ms, self.newest.get(peer, 0))

    def up(self, region: str) -> bool:
        """This region (not a peer) is always up; a peer while its heartbeats are fresh."""
        if region not in self.peers:
            return True
        return self.clock_ms() - self.newest.get(region, 0) <= self.down_after_ms

    def lag_ms(self, peer: str) -> int | None:
        """How old the peer's newest heartbeat is (None: none seen)."""
        newest = self.newest.get(peer)
        return None if newest is None else max(0, self.clock_ms() - newest)

    def retry_after_ms(self) -> int:
        return int(self.down_after_ms)


class PeerLinks:
    """Reads the peers' mirrored heartbeat topics without a group, from their ends."""

    def __init__(self, kafka: KafkaConnection, view: LinkView) -> None:
        self.kafka_connection = kafka
        self.view = view
        self._topics = {mirrored(peer, HEARTBEATS): peer for peer in view.peers}
        self._consumer: Consumer | None = None

    def poll(self) -> None:
        """Take what arrived (never blocks); assign the topics first when they exist."""
        if not self._topics:
            return
        try:
            consumer = self._consumer or self._assign()
            if consumer is None:
                return
            for record in consumer.consume(num_messages=1000, timeout=0):
                if record.error() is None and (peer := self._topics.get(record.topic() or "")):
                    self.view.saw(peer, record.timestamp()[1])
        except KafkaException as exc:
            log.warning("admission.links_unreadable", error=str(exc.args[0]))

    def _assign(self) -> Consumer | None:
        consumer = Consumer(
            client_config(
                self.kafka_connection,
                {"group.id": "kinfer-links", "enable.auto.commit": False, "log_level": 0},
            )
        )
        present = consumer.list_topics(timeout=2).topics
        if not all(topic in present for topic in self._topics):
            consumer.close()  # MirrorMaker has not made them yet: every peer counts as down
            return None
        parts = []
        for topic in self._topics:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=2)
            parts.append(TopicPartition(topic, 0, max(0, high - 3)))  # the last few: fresh at once
        consumer.assign(parts)
        self._consumer = consumer
        return consumer

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
