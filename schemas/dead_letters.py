"""Building a dead letter from a refused record, for every stage alike.

A dead letter keeps the record's bytes with the reason, but it must itself fit the
broker's record limit: the original travels base64-encoded (4/3 of its size) and
next to a reason, so a record near the limit would make a dead letter over it, and
that copy would be lost. Past ``MAX_DEAD_LETTER_ORIGINAL`` bytes the original is
cut, and its full size and sha256 are kept so it can still be identified.
"""

from __future__ import annotations

import hashlib
import time

from kinfer.schemas import limits
from kinfer.schemas.errors import ErrorCode
from kinfer.schemas.events import DeadLetter

MAX_DEAD_LETTER_ORIGINAL = limits.MAX_MESSAGE_BYTES // 2
"""Bytes of the original kept: base64 makes it 2/3 of the record limit, leaving room for the rest."""
MAX_REASON_CHARS = 2_000
MAX_REQUEST_ID_CHARS = 4 * limits.MAX_ID_CHARS


def dead_letter(
    original: bytes,
    *,
    reason: str,
    code: ErrorCode,
    source: tuple[str, int, int],
    request_id: str | None,
    now_ms: int | None = None,
) -> DeadLetter:
    """The dead letter of the record at ``source`` (topic, partition, offset)."""
    topic, partition, offset = source
    kept = original[:MAX_DEAD_LETTER_ORIGINAL]
    return DeadLetter(
        code=code,
        reason=reason[:MAX_REASON_CHARS],
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        original=kept,
        request_id=request_id[:MAX_REQUEST_ID_CHARS] if request_id else None,
        ts_ms=int(time.time() * 1000) if now_ms is None else now_ms,
        original_bytes=len(original),
        original_sha256=hashlib.sha256(original).hexdigest(),
        truncated=len(kept) < len(original),
    )
