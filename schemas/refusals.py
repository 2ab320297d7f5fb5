"""A record refused before any work, as both admission and workers decide it: the error
to answer with, where that answer can go, and whether the record is kept as a dead letter."""

from __future__ import annotations

from dataclasses import dataclass

from kinfer.schemas.messages import ErrorReply, InferenceRequest, ReplyAddress


@dataclass(frozen=True)
class Refused:
    reply: ErrorReply
    address: ReplyAddress | None
    """Where the answer goes; None when no reachable address could be read (dead letter only)."""
    request: InferenceRequest | None
    """The request, when the record decoded."""
    dead_letter_reason: str | None = None
    """Set for records kept in the DLQ: unreadable ones, and those nobody can be answered for."""
