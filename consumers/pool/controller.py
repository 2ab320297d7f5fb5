"""`kinfer pool`: watches a region's consumer lag and pool members, promotes and releases."""

from __future__ import annotations

import threading
import time

import structlog
from confluent_kafka import Consumer, KafkaException, TopicPartition

from kinfer.consumers import metrics
from kinfer.consumers.pool.policy import Action, PoolConfig, decide
from kinfer.consumers.pool.registry import PoolRegistry
from kinfer.consumers.pool.tuning import DRAIN, DrainSent, Seen, tune, tuning_command, unhealthy
from kinfer.schemas import TopicNames
from kinfer.schemas.kafka_client import KafkaConnection, client_config

log = structlog.get_logger(__name__)


class PoolController:
    def __init__(
        self, *, kafka: KafkaConnection, redis_url: str, prefix: str, region: str, group: str, cfg: PoolConfig
    ) -> None:
        self.topic = TopicNames(prefix).dispatch(region)
        self.registry = PoolRegistry(redis_url, prefix, region)
        self.cfg = cfg
        # Same group id, never subscribed: reads the group's committed offsets without joining it.
        self._offsets = Consumer(client_config(kafka, {"group.id": group, "enable.auto.commit": False}))
        self._last_promotion_ms = 0
        self._seen: dict[str, Seen] = {}
        self._drains: dict[str, DrainSent] = {}

    def lag(self) -> int:
        """Records on the dispatch topic the group has not committed past."""
        meta = self._offsets.list_topics(self.topic, timeout=10).topics[self.topic]
        parts = [TopicPartition(self.topic, p) for p in meta.partitions]
        committed = {tp.partition: tp.offset for tp in self._offsets.committed(parts, timeout=10)}
        total = 0
        for tp in parts:
            low, high = self._offsets.get_watermark_offsets(tp, timeout=10)
            done = committed.get(tp.partition, -1)
            total += high - (done if done >= 0 else low)
        return total

    def tick(self, now_ms: int | None = None) -> list[Action]:
        now = int(time.time() * 1000) if now_ms is None else now_ms
        lag = self.lag()
        beats = self.registry.heartbeats()
        members = self.registry.members(beats)
        metrics.POOL_LAG.set(lag)
        for state in ("active", "standby"):
            alive = [
                m for m in members if m.state == state and now - m.last_seen_ms <= self.cfg.dead_after_ms
            ]
            metrics.POOL_MEMBERS.labels(state).set(len(alive))
        actions = decide(members, lag, now, self._last_promotion_ms, self.cfg)
        for action in actions:
            self.registry.send(action.worker_id, action.kind)
            metrics.POOL_ACTIONS.labels(action.kind).inc()
            if action.kind == "promote":
                self._last_promotion_ms = now
            log.info(f"pool.{action.kind}", worker=action.worker_id, reason=action.reason, lag=lag)
        for drain in unhealthy(beats, self._drains, now, self.cfg):
            self.registry.send(drain.worker_id, DRAIN)
            metrics.POOL_ACTIONS.labels("drain").inc()
            log.warning("pool.drain", worker=drain.worker_id, reason=drain.reason, check="self-test")
        for tuning in tune(beats, self._seen, now, self.cfg):
            self.registry.send(tuning.worker_id, tuning_command(tuning.max_wait_ms))
            metrics.POOL_ACTIONS.labels(tuning.kind).inc()
            log.info(
                f"pool.{tuning.kind}",
                worker=tuning.worker_id,
                max_wait_ms=tuning.max_wait_ms,
                reason=tuning.reason,
            )
        return actions

    def run(self, stop: threading.Event) -> None:
        log.info("pool.started", topic=self.topic, cfg=self.cfg)
        while not stop.is_set():
            try:
                self.tick()
            except KafkaException as exc:
                log.warning("pool.kafka_error", error=str(exc))
            stop.wait(self.cfg.interval_ms / 1000)
        self._offsets.close()
