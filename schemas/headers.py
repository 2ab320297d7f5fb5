"""Kafka header conventions.

Request id, tenant, deadline, reply address and W3C trace context travel in
headers as well as in the value, so routing and error replies never need to
parse a body (and still work when the body cannot be parsed at all).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final

from kinfer.schemas.limits import MAX_PARTITION
from kinfer.schemas.topics import is_topic_name

REQUEST_ID: Final = "kinfer-request-id"
TENANT: Final = "kinfer-tenant"
DEADLINE_MS: Final = "kinfer-deadline-ms"
REPLY_TOPIC: Final = "kinfer-reply-topic"
REPLY_PARTITION: Final = "kinfer-reply-partition"
SCHEMA_VERSION: Final = "kinfer-schema-version"
RATE_LIMIT: Final = "kinfer-ratelimit"
"""JSON :class:`~schemas.messages.RateLimitStatus`, stamped by admission on dispatched records
(replacing any a client sent); workers copy it onto the result."""
ADMITTED_MS: Final = "kinfer-admitted-ms"
"""Unix ms (fractional) when admission began deciding a dispatched record, stamped by admission
(replacing any a client sent); workers report it in the result's ``timings``."""
PRIORITY: Final = "kinfer-priority"
"""``<band>:<weight>`` of the request's tier (``2:1.5``), stamped by admission (replacing any a
client sent); a worker's fair queue serves higher bands first, tenants by weight within one."""
ADMISSION_STAMPS: Final = frozenset({RATE_LIMIT, ADMITTED_MS, PRIORITY})
"""Headers only admission may set on a dispatched record."""
KIND: Final = "kinfer-kind"
"""What an ingress record is: absent for a request, ``cancel`` for a :class:`CancelRequest`."""
CANCEL: Final = "cancel"
TRACEPARENT: Final = "traceparent"
"""W3C trace context, unchanged from the caller (https://www.w3.org/TR/trace-context/)."""

_PARTITION = re.compile(r"[0-9]{1,10}")

KafkaHeaders = list[tuple[str, str | bytes | None]]
"""Headers as the Kafka clients take and give them."""


def encode_headers_bytes(values: Mapping[str, str | int | None]) -> list[tuple[str, bytes]]:
    """Headers as aiokafka (Faust) takes them; ``None`` values are left out."""
    return [(key, str(value).encode()) for key, value in values.items() if value is not None]


def encode_headers(values: Mapping[str, str | int | None]) -> KafkaHeaders:
    """The same, typed as confluent-kafka takes them."""
    out: KafkaHeaders = []
    out.extend(encode_headers_bytes(values))
    return out


def decode_headers(
    headers: Iterable[tuple[str, str | bytes | None]] | Mapping[str, str | bytes | None] | None,
) -> dict[str, str]:
    """Headers as text; the last value wins, unreadable values are skipped."""
    items = headers.items() if isinstance(headers, Mapping) else headers or ()
    out: dict[str, str] = {}
    for key, raw in items:
        if raw is None:
            continue
        try:
            out[key] = raw if isinstance(raw, str) else raw.decode()
        except UnicodeDecodeError:
            continue
    return out


def reply_address(values: Mapping[str, str]) -> tuple[str, int] | None:
    """(topic, partition) of the reply address in decoded headers, if both are there.

    Lets a stage answer a record whose body cannot be parsed at all.
    """
    topic = values.get(REPLY_TOPIC, "")
    partition = values.get(REPLY_PARTITION, "")
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
    if not is_topic_name(topic) or not _PARTITION.fullmatch(partition):
        return None
    number = int(partition)
    return (topic, number) if number <= MAX_PARTITION else None


def priority(values: Mapping[str, str]) -> tuple[int, float]:
    """(band, weight) from a ``kinfer-priority`` stamp; (0, 1.0) when absent or unreadable."""
    band, _, weight = values.get(PRIORITY, "").partition(":")
    try:
        parsed = int(band), float(weight)
    except ValueError:
        return 0, 1.0
    if not 0 <= parsed[0] <= 9 or not 0.01 <= parsed[1] <= 100:
        return 0, 1.0
    return parsed
