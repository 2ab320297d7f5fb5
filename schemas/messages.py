"""The wire messages: what producers, streams and consumers say to each other.

All messages are msgspec structs encoded as JSON. Readers ignore fields they do
not know, so a reader of schema version N accepts version N+1 messages that only
add optional fields (see ``codec.py`` for how same-version typos are refused).
Limits are enforced in ``__post_init__``, which msgspec runs both when a message
is constructed and when it is decoded.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from kinfer.schemas import limits
from kinfer.schemas.errors import ErrorCode, InvalidMessage
from kinfer.schemas.topics import is_topic_name

SCHEMA_VERSION = 7
"""Version written by this code; bumped only by additive, optional changes.

2: ``rate_limit`` on results, first token chunks and error replies; every message
   carries ``schema_version`` (version 1 writers left it out).
3: ``messages`` on requests (a chat, rendered by the worker with the served model's
   own chat template); ``model`` may be left out (whatever the region serves);
   ``served_model`` on outcome events; dead letters say the original's size and
   digest, and whether it was cut to fit.
4: ``timings`` on results: when each stage had the request, so a client can see where
   its latency went.
5: the error code ``unauthenticated`` (a secured pipeline refuses requests whose tenant is
   not proven by a signature, see ``signing.py``); readers before 5 do not know the code.
6: OpenAI's sampling knobs: ``frequency_penalty``, ``presence_penalty``, ``logit_bias``,
   ``n`` (choices decoded together), ``logprobs``, ``top_logprobs`` and ``json_schema``; results carry
   ``logprobs`` and the further ``choices``, chunks their ``choice`` and ``logprobs``.
7: cancel: the error code ``cancelled``, with ``text`` and ``usage`` on its error reply (what
   was produced before the cancel); ``CancelRequest`` on the ingress topic (header
   ``kinfer-kind: cancel``) and its ``CancelAck`` on the canceller's reply address (both in
   ``cancels.py``);
   ``cancelled`` as an outcome status.
"""


def writer_version() -> int:
    # A factory, not a plain default: ``omit_defaults`` leaves out fields equal to their
    # default, and a reader must always see the writer's version to apply the rules above.
    return SCHEMA_VERSION


class ReplyAddress(msgspec.Struct, frozen=True):
    """Where the single terminal answer (and any stream chunks) must go."""

    topic: str
    """Reply topic, normally the shared ``<prefix>.replies``."""
    partition: int
    """The partition the client owns and has assigned before sending."""

    def __post_init__(self) -> None:
        if not is_topic_name(self.topic):
            raise InvalidMessage(f"reply_to.topic {self.topic[:80]!r} is not a Kafka topic name")
        if not 0 <= self.partition <= limits.MAX_PARTITION:
            raise InvalidMessage(f"reply_to.partition must be in 0..{limits.MAX_PARTITION}")


class SamplingParams(msgspec.Struct, frozen=True, omit_defaults=True, kw_only=True):
    """How to pick tokens. Temperature 0 is greedy and fully deterministic."""

    max_tokens: int = 64
    """Most new tokens to generate (per choice)."""
    temperature: float = 0.0
    """0 = greedy; higher = more random."""
    top_p: float = 1.0
    """Nucleus sampling mass, in (0, 1]."""
    seed: int | None = None
    """Fixes the random stream for temperature > 0 (deterministic then too); choice ``i`` of
    ``n`` draws from seed + i."""
    stop: tuple[str, ...] = ()
    """Generation ends before the first occurrence of any of these."""
    frequency_penalty: float = 0.0
    """In -2..2: subtracted from a token's logit once per time it was already generated."""
    presence_penalty: float = 0.0
    """In -2..2: subtracted from a token's logit once it was generated at all."""
    logit_bias: dict[int, float] = msgspec.field(default_factory=dict)
    """Token id -> bias in -100..100, added to its logit at every step (-100 bans it, 100
    forces it). Ids are the served model's; a worker refuses ids outside its vocabulary."""
    n: int = 1
    """Choices to generate for the prompt, decoded together in one batch."""
    logprobs: bool = False
    """Return each generated token's log-probability."""
    top_logprobs: int = 0
    """And this many likeliest alternatives at each position (needs ``logprobs``)."""
    json_schema: dict[str, Any] | None = None
    """The answer is JSON valid against this JSON Schema (``{"type": "object"}``: any object):
    decoding is constrained to it. A worker refuses a schema it cannot compile."""

    def __post_init__(self) -> None:
        if not 1 <= self.max_tokens <= limits.MAX_NEW_TOKENS:
            raise InvalidMessage(f"max_tokens must be in 1..{limits.MAX_NEW_TOKENS}, got {self.max_tokens}")
        if not (self.temperature == 0.0 or limits.MIN_TEMPERATURE <= self.temperature <= 5.0):
            raise InvalidMessage(
                f"temperature must be 0 (greedy) or in {limits.MIN_TEMPERATURE}..5, got {self.temperature}"
            )
        if self.seed is not None and not limits.MIN_SEED <= self.seed <= limits.MAX_SEED:
            raise InvalidMessage(f"seed must be in {limits.MIN_SEED}..{limits.MAX_SEED}")
        if not 0.0 < self.top_p <= 1.0:
            raise InvalidMessage(f"top_p must be in (0, 1], got {self.top_p}")
        if len(self.stop) > limits.MAX_STOP_SEQUENCES:
            raise InvalidMessage(f"at most {limits.MAX_STOP_SEQUENCES} stop sequences, got {len(self.stop)}")
        if any(not s or len(s) > limits.MAX_STOP_SEQUENCE_CHARS for s in self.stop):
            raise InvalidMessage(f"stop sequences must be 1..{limits.MAX_STOP_SEQUENCE_CHARS} chars")
        self._check_openai_knobs()

    def _check_openai_knobs(self) -> None:
        for name in ("frequency_penalty", "presence_penalty"):
            if not -2.0 <= getattr(self, name) <= 2.0:
                raise InvalidMessage(f"{name} must be in -2..2, got {getattr(self, name)}")
        if len(self.logit_bias) > limits.MAX_LOGIT_BIAS:
            raise InvalidMessage(f"logit_bias may name at most {limits.MAX_LOGIT_BIAS} tokens")
        for token, bias in self.logit_bias.items():
            if token < 0 or not -100.0 <= bias <= 100.0:
                raise InvalidMessage(f"logit_bias[{token}] = {bias}: ids are >= 0, biases in -100..100")
        if not 1 <= self.n <= limits.MAX_CHOICES:
            raise InvalidMessage(f"n must be in 1..{limits.MAX_CHOICES}, got {self.n}")
        if not 0 <= self.top_logprobs <= limits.MAX_TOP_LOGPROBS:
            raise InvalidMessage(
                f"top_logprobs must be in 0..{limits.MAX_TOP_LOGPROBS}, got {self.top_logprobs}"
            )
        if self.top_logprobs and not self.logprobs:
            raise InvalidMessage("top_logprobs needs logprobs")
        if (
            self.json_schema is not None
            and len(msgspec.json.encode(self.json_schema)) > limits.MAX_JSON_SCHEMA_BYTES
        ):
            raise InvalidMessage(f"json_schema is over {limits.MAX_JSON_SCHEMA_BYTES} bytes")

    @property
    def penalised(self) -> bool:
        """Whether tokens already generated change the next token's logits."""
        return bool(self.frequency_penalty or self.presence_penalty)


ChatRole = Literal["system", "user", "assistant"]


class ChatMessage(msgspec.Struct, frozen=True):
    """One turn of a conversation."""

    role: ChatRole
    content: str


class RateLimitStatus(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant's rate-limit buckets as admission left them (OpenAI's ``x-ratelimit-*``)."""

    limit_requests: int
    """Requests per minute of the tenant's tier."""
    limit_tokens: int
    """Tokens (prompt + max_tokens) per minute of the tenant's tier."""
    remaining_requests: int
    """Requests that could be admitted right now."""
    remaining_tokens: int
    """Tokens that could be reserved right now."""
    reset_requests_ms: int
    """Until the request bucket is full again."""
    reset_tokens_ms: int
    """Until the token bucket is full again."""


class InferenceRequest(msgspec.Struct, frozen=True, omit_defaults=True, kw_only=True):
    """One generation request, as put on ``<prefix>.requests`` (key = tenant)."""

    request_id: str
    """Client-chosen unique id; replies, de-duplication and tracing use it."""
    tenant: str
    """Who pays: rate limits and tiers are per tenant."""
    reply_to: ReplyAddress
    """Where the answer goes."""
    prompt: str = ""
    """The text to continue; exactly one of ``prompt`` and ``messages`` is set."""
    messages: tuple[ChatMessage, ...] = ()
    """A chat to answer: the worker renders it with the model's chat template and
    stops at the template's end of turn."""
    model: str | None = None
    """Served model name; None = whatever the region's workers serve. Admission refuses
    a name no live worker serves."""
    sampling: SamplingParams = SamplingParams()
    """Token selection."""
    stream: bool = False
    """Send token chunks before the final result."""
    user: str | None = None
    """End user, for region routing; defaults to the tenant."""
    session_id: str | None = None
    """Conversation id: context and worker affinity."""
    created_ms: int = 0
    """Unix ms when the client made the request."""
    deadline_ms: int | None = None
    """Unix ms after which no answer is useful; answered ``deadline_exceeded``."""
    traceparent: str | None = None
    """W3C trace context of the caller."""
    schema_version: int = msgspec.field(default_factory=writer_version)
    """Wire version of the writer."""

    def __post_init__(self) -> None:
        for name in ("request_id", "tenant", "user", "session_id"):
            value = getattr(self, name)
            optional = name in ("user", "session_id")
            if (value is not None or not optional) and not 1 <= len(value or "") <= limits.MAX_ID_CHARS:
                raise InvalidMessage(f"{name} must be 1..{limits.MAX_ID_CHARS} characters")
        if bool(self.prompt) == bool(self.messages):
            raise InvalidMessage("a request needs a non-empty prompt or messages, not both")
        if self.model is not None and not 1 <= len(self.model) <= limits.MAX_ID_CHARS:
            raise InvalidMessage(f"model must be 1..{limits.MAX_ID_CHARS} characters")
        size = self.text_bytes()
        if size > limits.MAX_PROMPT_BYTES:
            raise InvalidMessage(f"prompt is {size} bytes; the limit is {limits.MAX_PROMPT_BYTES}")
        if self.schema_version < 1:
            raise InvalidMessage(f"schema_version must be >= 1, got {self.schema_version}")

    def text_bytes(self) -> int:
        """UTF-8 size of the prompt, or of every message's role and content."""
        if self.prompt:
            return len(self.prompt.encode("utf-8", "surrogatepass"))
        return sum(len(m.role) + len(m.content.encode("utf-8", "surrogatepass")) for m in self.messages)


class Usage(msgspec.Struct, frozen=True):
    """Token counts of one request, OpenAI-style."""

    prompt_tokens: int
    completion_tokens: int


class TopLogprob(msgspec.Struct, frozen=True):
    """One of the likeliest tokens at a position."""

    token: str
    logprob: float


class TokenLogprob(msgspec.Struct, frozen=True, omit_defaults=True):
    """A generated token's log-probability under the model (before temperature, penalties
    and bias: the model's own distribution), and the likeliest alternatives there."""

    token: str
    """The token's text (half a multi-byte character decodes to U+FFFD)."""
    logprob: float
    top: tuple[TopLogprob, ...] = ()
    """``top_logprobs`` alternatives, likeliest first."""


class Choice(msgspec.Struct, frozen=True, omit_defaults=True, kw_only=True):
    """One more answer to the same prompt (requests with ``n`` > 1)."""

    index: int
    """1..n-1; choice 0 is the result's own ``text``."""
    text: str
    finish_reason: Literal["stop", "length"]
    completion_tokens: int
    logprobs: tuple[TokenLogprob, ...] | None = None


class Timings(msgspec.Struct, frozen=True, omit_defaults=True, kw_only=True):
    """When each stage had a request: Unix ms, fractional. With the request's ``created_ms``
    and the time the client read the answer, they split its latency by stage. Clocks of
    different hosts may disagree; on one host the differences are exact."""

    admitted_ms: float = 0.0
    """Admission began deciding the record (0: it did not say)."""
    dispatched_ms: float = 0.0
    """Admission's forward to the dispatch topic was produced (the record's Kafka timestamp)."""
    consumed_ms: float = 0.0
    """The worker took the record from Kafka."""
    started_ms: float = 0.0
    """Compute began: the request joined the running batch."""
    finished_ms: float = 0.0
    """Compute ended: its last token was decoded."""


class InferenceResult(msgspec.Struct, frozen=True, omit_defaults=True, kw_only=True, tag="result"):
    """The successful terminal answer."""

    request_id: str
    text: str
    """Generated text, stop sequence excluded."""
    finish_reason: Literal["stop", "length"]
    """``stop``: end-of-sequence or a stop sequence; ``length``: max_tokens reached."""
    usage: Usage
    model: str
    worker_id: str = ""
    """Which worker answered (for debugging affinity)."""
    queue_ms: float = 0.0
    """Time from admission to the start of compute."""
    compute_ms: float = 0.0
    """Time in the model for the batch that held this request."""
    rate_limit: RateLimitStatus | None = None
    """The tenant's limits when this request was admitted."""
    timings: Timings | None = None
    """When each stage had the request (absent on cache hits and older workers)."""
    logprobs: tuple[TokenLogprob, ...] | None = None
    """Per generated token of ``text``, when the request asked for ``logprobs``."""
    choices: tuple[Choice, ...] = ()
    """Choices 1..n-1 when the request asked for ``n`` > 1 (``usage`` counts them all)."""
    schema_version: int = msgspec.field(default_factory=writer_version)


class TokenChunk(msgspec.Struct, frozen=True, omit_defaults=True, kw_only=True, tag="chunk"):
    """A piece of streamed output; the final :class:`InferenceResult` follows."""

    request_id: str
    index: int
    """0-based position of this chunk in the stream (all choices together)."""
    text: str
    choice: int = 0
    """Which of the ``n`` choices this text continues."""
    logprobs: tuple[TokenLogprob, ...] | None = None
    """Of the tokens whose text this chunk carries, when the request asked for ``logprobs``."""
    rate_limit: RateLimitStatus | None = None
    """On the first chunk only: the tenant's limits when admitted (a stream's HTTP
    headers go out with it, long before the result)."""
    schema_version: int = msgspec.field(default_factory=writer_version)


class ErrorReply(msgspec.Struct, frozen=True, omit_defaults=True, kw_only=True, tag="error"):
    """The failed terminal answer."""

    request_id: str
    code: ErrorCode
    message: str
    """For humans; never parsed."""
    retry_after_ms: int | None = None
    """When retrying may succeed (rate limits, open breakers)."""
    rate_limit: RateLimitStatus | None = None
    """With ``rate_limited``: the tenant's limits and how far they are spent."""
    text: str = ""
    """With ``cancelled``: the text generated before the cancel took effect (choice 0)."""
    usage: Usage | None = None
    """With ``cancelled``: the tokens really used (what the tenant is charged)."""
    schema_version: int = msgspec.field(default_factory=writer_version)

    @property
    def retriable(self) -> bool:
        return self.code.retriable


Reply = InferenceResult | TokenChunk | ErrorReply
"""Everything that may arrive on a reply address for a request."""
