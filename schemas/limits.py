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
MAX_CHOICES: Final = 8
"""Largest ``n``: choices decoded together for one prompt (each one a batch row)."""
MAX_TOP_LOGPROBS: Final = 20
"""Largest ``top_logprobs``, as OpenAI."""
MAX_JSON_SCHEMA_BYTES: Final = 64 * 1024
"""Largest ``json_schema`` (encoded) a request may constrain its answer to."""
MAX_LOGIT_BIAS: Final = 300
"""Most token ids one ``logit_bias`` may name."""
MAX_STOP_SEQUENCE_CHARS: Final = 64
MAX_ID_CHARS: Final = 128
"""Longest request id, tenant, user or session id."""

MAX_MESSAGE_BYTES: Final = 1024 * 1024
"""The broker's and every producer's record size limit (message.max.bytes)."""

RECORD_OVERHEAD_BYTES: Final = 64 * 1024
"""Room kept below MAX_MESSAGE_BYTES for a record's key, headers and framing."""

MAX_PARTITION: Final = 2**31 - 1
"""Kafka partition numbers are int32."""

MIN_TEMPERATURE: Final = 1e-3
"""Smallest temperature above 0: below it, logits / temperature overflow float32 and
the sampler would see inf or nan (0 itself means greedy)."""

MIN_SEED: Final = -(2**63)
MAX_SEED: Final = 2**64 - 1
"""The seeds torch's generators take."""
