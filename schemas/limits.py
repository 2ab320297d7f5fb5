"""Hard limits of the wire contract, enforced when a message is built or decoded.

Stages may configure tighter limits; never looser ones. The prompt limit keeps a
request well under the broker's ``message.max.bytes`` (see ``topics.py``), so an
oversized prompt is refused before it reaches Kafka instead of failing there.
"""

from typing import Final

MAX_PROMPT_BYTES: Final = 256 * 1024
"""UTF-8 size of a prompt (or all chat messages together)."""

MAX_NEW_TOKENS: Final = 8192
"""Largest ``max_tokens`` a request may ask for."""

MAX_STOP_SEQUENCES: Final = 8
MAX_STOP_SEQUENCE_CHARS: Final = 64
MAX_ID_CHARS: Final = 128
"""Longest request id, tenant, user or session id."""

MAX_MESSAGE_BYTES: Final = 1024 * 1024
"""The broker's and every producer's record size limit (message.max.bytes)."""
