"""OpenAI request bodies: every parameter OpenAI documents is either used, accepted with a
stated meaning, or refused with a reason (``refused``); unknown fields are refused, as
OpenAI does. Response bodies are in ``responses.py``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kinfer.producers.chat import ChatMessage
from kinfer.schemas import SamplingParams, limits


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContentPart(_Strict):
    """One part of a message's content; only text reaches a text model."""

    type: str
    text: str | None = None
    image_url: Any = None
    input_audio: Any = None
    file: Any = None
    refusal: str | None = None


class Message(_Strict):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    """Accepted; chat templates of open models have no place for it, so it is not sent on."""
    refusal: str | None = None
    tool_calls: list[Any] | None = None
    tool_call_id: str | None = None

    def refused(self, where: str) -> tuple[str, str] | None:
        if self.role in ("tool", "function") or self.tool_calls or self.tool_call_id:
            return (
                where,
                "tool messages need tool calling, which the served models do not support (see tools)",
            )
        for i, part in enumerate(self.content if isinstance(self.content, list) else []):
            if part.type != "text" or part.text is None:
                return (
                    f"{where}.content[{i}]",
                    f"content parts of type {part.type!r}: the model reads text only",
                )
        if self.content is None and self.role != "assistant":
            return f"{where}.content", "content is required"
        return None

    def to_chat(self) -> ChatMessage:
        """The wire message: ``developer`` is the system turn (what OpenAI made of it), text
        parts joined by newlines (as vLLM joins them)."""
        content = self.content or ""
        text = content if isinstance(content, str) else "\n".join(p.text or "" for p in content)
        return ChatMessage("system" if self.role == "developer" else self.role, text)  # type: ignore[arg-type]


class StreamOptions(_Strict):
    include_usage: bool = False
    include_obfuscation: bool | None = None
    """Accepted; there is nothing to pad: chunks go over loopback or the caller's TLS."""


class JsonSchemaFormat(_Strict):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None
    """Accepted: the schema is always followed strictly (decoding cannot leave it)."""


class ResponseFormat(_Strict):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    def constraint(self) -> dict[str, Any] | None:
        """What the answer is constrained to: None for text, any object for ``json_object``."""
        if self.type == "text":
            return None
        given = self.json_schema.schema_ if self.json_schema is not None else None
        return given if given is not None else {"type": "object"}


_REFUSED = {
    "tools": "tool calling: the served models' chat templates take no tools in kinfer yet",
    "functions": "function calling (the legacy form of tools) is not supported",
    "audio": "audio output: the served models produce text only",
    "prediction": "predicted outputs are not supported",
    "web_search_options": "web search is not part of a self-hosted model",
    "reasoning_effort": "the served models do not reason in separate tokens",
    "suffix": "insertion (suffix) needs a fill-in-the-middle model",
}
"""Parameters that would change what the model does in a way kinfer cannot: refused, with why."""


class _Common(_Strict):
    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    n: int | None = Field(default=None, ge=1, le=limits.MAX_CHOICES)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    metadata: dict[str, str] | None = None
    """Accepted and not stored: OpenAI's dashboard tags."""
    store: bool | None = None
    """Accepted; kinfer keeps no completions (false is what it does)."""
    service_tier: str | None = None
    """Accepted; the tenant's tier (its API key) decides, not the request."""

    def refused(self) -> tuple[str, str] | None:
        """The first parameter kinfer cannot honour: (its name, why)."""
        for name, why in _REFUSED.items():
            if getattr(self, name, None):
                return name, why
        stops = self.stops()
        if len(stops) > 4:
            return "stop", f"at most 4 stop sequences, as OpenAI; got {len(stops)}"
        for key in self.logit_bias or {}:
            if not key.isdigit():
                return "logit_bias", f"logit_bias keys are token ids, got {key!r}"
        return None

    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def new_tokens(self) -> int:
        return self.max_completion_tokens or self.max_tokens or 64

    def sampling(self) -> SamplingParams:
        """The wire contract's sampling (it refuses what is out of its range: a 400)."""
        return SamplingParams(
            max_tokens=self.new_tokens(),
            temperature=1.0 if self.temperature is None else self.temperature,
            top_p=1.0 if self.top_p is None else self.top_p,
            seed=self.seed,
            stop=self.stops(),
            frequency_penalty=self.frequency_penalty or 0.0,
            presence_penalty=self.presence_penalty or 0.0,
            logit_bias={int(k): v for k, v in (self.logit_bias or {}).items()},
            n=self.n or 1,
            logprobs=self.logprobs_wanted(),
            top_logprobs=self.top_wanted(),
            json_schema=self.schema_wanted(),
        )

    @property
    def choices(self) -> int:
        return self.n or 1

    def logprobs_wanted(self) -> bool:
        return False

    def top_wanted(self) -> int:
        return 0

    def schema_wanted(self) -> dict[str, Any] | None:
        return None


class ChatCompletionRequest(_Common):
    messages: list[Message] = Field(min_length=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=limits.MAX_TOP_LOGPROBS)
    response_format: ResponseFormat | None = None
    tools: list[Any] | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    """Accepted without tools: there are none to call in parallel."""
    functions: list[Any] | None = None
    function_call: Any = None
    modalities: list[Literal["text", "audio"]] | None = None
    audio: Any = None
    prediction: Any = None
    web_search_options: Any = None
    reasoning_effort: str | None = None
    verbosity: str | None = None
    """Accepted; a base model has no verbosity setting (max_tokens bounds the answer)."""

    def refused(self) -> tuple[str, str] | None:
        wanted = self.response_format
        if wanted is not None and wanted.type == "json_schema" and wanted.json_schema is None:
            return "response_format.json_schema", "type json_schema needs json_schema: {name, schema}"
        if self.tool_choice not in (None, "none") or self.function_call not in (None, "none"):
            return "tool_choice", _REFUSED["tools"]
        if self.modalities and "audio" in self.modalities:
            return "modalities", _REFUSED["audio"]
        if self.top_logprobs and not self.logprobs:
            return "top_logprobs", "top_logprobs needs logprobs: true"
        for i, message in enumerate(self.messages):
            if (problem := message.refused(f"messages[{i}]")) is not None:
                return problem
        return super().refused()

    def chat(self) -> list[ChatMessage]:
        return [m.to_chat() for m in self.messages]

    def logprobs_wanted(self) -> bool:
        return bool(self.logprobs)

    def top_wanted(self) -> int:
        return self.top_logprobs or 0

    def schema_wanted(self) -> dict[str, Any] | None:
        return self.response_format.constraint() if self.response_format is not None else None


class CompletionRequest(_Common):
    prompt: str | list[str]
    logprobs: int | None = Field(default=None, ge=0, le=5)
    """The legacy form: how many alternatives per token (0: the picked token's alone)."""
    echo: bool | None = None
    """The prompt comes back before the completion."""
    best_of: int | None = Field(default=None, ge=1)
    suffix: str | None = None

    def refused(self) -> tuple[str, str] | None:
        if self.echo and self.logprobs is not None:
            return "echo", "echo with logprobs needs the prompt's log-probabilities, which are not computed"
        if isinstance(self.prompt, list) and len(self.prompt) != 1:
            return "prompt", "one prompt per request: send a list of prompts as separate requests"
        if self.best_of not in (None, 1, self.choices):
            return "best_of", "best_of above n (server-side ranking of candidates) is not supported"
        return super().refused()

    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]

    def logprobs_wanted(self) -> bool:
        return self.logprobs is not None

    def top_wanted(self) -> int:
        return self.logprobs or 0
