"""What the pipeline writes about requests rather than to their senders: each request's outcome
event (``<prefix>.events``: breakers, limits and monitoring read it) and the dead letters of
records it could not process (``.dlq`` topics)."""

from __future__ import annotations

from typing import Literal

import msgspec

from kinfer.schemas.errors import ErrorCode
from kinfer.schemas.messages import writer_version

OutcomeStatus = Literal[
    "ok",
    "invalid_request",
    "rate_limited",
    "unavailable",
    "deadline_exceeded",
    "internal",
    "unauthenticated",
    "cancelled",
]
"""``ok`` or an :class:`ErrorCode` value (a test keeps the two in step)."""


class WorkerEvent(msgspec.Struct, frozen=True, omit_defaults=True, kw_only=True, tag="outcome"):
    """Per-request outcome on ``<prefix>.events``: feeds breakers, limits and monitoring."""

    request_id: str
    tenant: str
    region: str
    model: str
    """The model the request asked for, ``""`` when it named none: breakers are per
    (region, requested model), the same key admission checks."""
    status: OutcomeStatus
    """``ok`` or the error code of the terminal answer."""
    served_model: str = ""
    """The model that answered."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    queue_ms: float = 0.0
    compute_ms: float = 0.0
    batch_id: str = ""
    batch_size: int = 0
    worker_id: str = ""
    ts_ms: int = 0
    """Unix ms when the outcome was decided."""
    schema_version: int = msgspec.field(default_factory=writer_version)


class DeadLetter(msgspec.Struct, frozen=True, omit_defaults=True, kw_only=True):
    """A record the pipeline could not process, kept with its reason (``.dlq`` topics)."""

    code: ErrorCode
    reason: str
    """Why it was refused, for humans."""
    source_topic: str
    source_partition: int
    source_offset: int
    original: bytes
    """The record's value (base64 in JSON); its first bytes only when ``truncated``."""
    request_id: str | None = None
    """From the headers, when they could be read."""
    ts_ms: int = 0
    original_bytes: int = 0
    """Size of the whole original record value."""
    original_sha256: str = ""
    """Hex digest of the whole original record value."""
    truncated: bool = False
    """True when ``original`` was cut to keep the dead letter under the broker's limit."""
    schema_version: int = msgspec.field(default_factory=writer_version)
