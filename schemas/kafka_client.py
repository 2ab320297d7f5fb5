"""The librdkafka settings every confluent-kafka client of kinfer starts from.

librdkafka prints its own log lines (``%4|...|GETPID|...``) straight to stderr
unless a client is given a logger. Every client built from :func:`client_config`
hands them to the ``kinfer.librdkafka`` logger instead, so they come out through
kinfer's structured logs at their own level (``infra.logs`` decides what shows).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from confluent_kafka import Consumer, Message

LIBRDKAFKA_LOGGER = "kinfer.librdkafka"


def client_config(bootstrap_servers: str, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``bootstrap.servers`` and kinfer's logger, then the client's own librdkafka ``settings``."""
    logger = logging.getLogger(LIBRDKAFKA_LOGGER)
    return {"bootstrap.servers": bootstrap_servers, "logger": logger, **(settings or {})}


def take_available(consumer: Consumer, limit: int, timeout_s: float) -> list[Message]:
    """Up to ``limit`` records: wait at most ``timeout_s`` for the first, then take what else
    is there without waiting. (``consume(limit, timeout)`` returns only once ``limit``
    records are there or the timeout passed, so a lone record would wait the whole timeout.)"""
    first = consumer.poll(timeout_s)
    if first is None:
        return []
    return [first, *consumer.consume(limit - 1, 0)] if limit > 1 else [first]
