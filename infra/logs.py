"""Structured logging for every kinfer process (structlog over stdlib logging).

Libraries that log through stdlib logging (Faust, aiokafka, httpx, and librdkafka,
whose lines every confluent-kafka client hands to ``kinfer.librdkafka``, see
``schemas.kafka_client``) come out in the same format as kinfer's own lines.
Their chatter shows only at DEBUG.
"""

from __future__ import annotations

import logging
import sys

import structlog

from kinfer.schemas.kafka_client import LIBRDKAFKA_LOGGER

QUIET_UNLESS_DEBUG = (LIBRDKAFKA_LOGGER, "httpx", "httpcore")


def configure(level: str = "INFO", fmt: str = "console") -> None:
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso"),
    ]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in QUIET_UNLESS_DEBUG:
        logging.getLogger(name).setLevel(level if level == "DEBUG" else "WARNING")
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
