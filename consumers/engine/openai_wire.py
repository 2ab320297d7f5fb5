"""OpenAI's wire, as the worker speaks it to an engine server: a request's body, and the
server-sent events of its stream folded back into kinfer's outputs. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from kinfer.consumers.engine.runner import GenerationInput, GenerationOutput, TextDelta
from kinfer.schemas import SamplingParams, TokenLogprob, TopLogprob


def request_body(item: GenerationInput, model: str) -> tuple[str, dict[str, Any]]:
    """(path under the API root, JSON body) of one streaming call: a chat goes to
    ``chat/completions`` (the engine renders it with its own template), a prompt to
    ``completions``. Every knob kinfer's wire carries is passed on; the engine refuses what it
    cannot honour, and that refusal becomes the request's answer."""
    sampling = item.sampling
    chat = bool(item.messages)
    body: dict[str, Any] = {
        "model": model,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": sampling.max_tokens,
        "temperature": sampling.temperature,
        **_knobs(sampling),
    }
    if chat:
        body["messages"] = [{"role": m.role, "content": m.content} for m in item.messages]
        if sampling.logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = sampling.top_logprobs
        if sampling.json_schema is not None:
            schema = {"name": "answer", "schema": sampling.json_schema, "strict": True}
            body["response_format"] = {"type": "json_schema", "json_schema": schema}
        return "chat/completions", body
    body["prompt"] = item.prompt
    if sampling.logprobs:
        body["logprobs"] = sampling.top_logprobs
    if sampling.json_schema is not None:
        # vLLM and SGLang take response_format on completions too; llama-server's own name.
        schema = {"name": "answer", "schema": sampling.json_schema, "strict": True}
        body["response_format"] = {"type": "json_schema", "json_schema": schema}
        body["json_schema"] = sampling.json_schema
    return "completions", body


def _knobs(sampling: SamplingParams) -> dict[str, Any]:
    """The optional knobs a request set (an engine that lacks one is not sent it for nothing)."""
    knobs: dict[str, Any] = {}
    if sampling.top_p != 1.0:
        knobs["top_p"] = sampling.top_p
    if sampling.seed is not None:
        knobs["seed"] = sampling.seed
    if sampling.stop:
        knobs["stop"] = list(sampling.stop)
    if sampling.frequency_penalty:
        knobs["frequency_penalty"] = sampling.frequency_penalty
    if sampling.presence_penalty:
        knobs["presence_penalty"] = sampling.presence_penalty
    if sampling.logit_bias:
        knobs["logit_bias"] = {str(t): b for t, b in sampling.logit_bias.items()}
    if sampling.n != 1:
        knobs["n"] = sampling.n
    return knobs


@dataclass
class _Choice:
    text: str = ""
    tokens: int = 0
    """Chunks that carried text (engines stream about one token per chunk)."""
    finish: Literal["stop", "length"] | None = None
    logprobs: list[TokenLogprob] = field(default_factory=list)


class StreamState:
    """One request's stream as it arrives: ``feed`` each line, read ``output`` at the end."""

    def __init__(self, item: GenerationInput, prompt_estimate: int) -> None:
        self.item = item
        self.choices = [_Choice() for _ in range(item.sampling.n)]
        self.prompt_tokens = prompt_estimate
        self.completion_tokens: int | None = None
        self.done = False

    def feed(self, line: str) -> list[TextDelta]:
        """The text that one line of the event stream adds (none for keep-alives, usage)."""
        if not line.startswith("data:"):
            return []  # blank separators, comments, event names
        data = line[5:].strip()
        if data == "[DONE]":
            self.done = True
            return []
        event = msgspec.json.decode(data)
        if not isinstance(event, dict):
            raise ValueError(f"an event that is not an object: {data[:100]!r}")
        if "error" in event:
            raise ValueError(f"the engine failed mid-stream: {str(event['error'])[:200]}")
        usage = event.get("usage")
        if isinstance(usage, dict):
            self.prompt_tokens = int(usage.get("prompt_tokens", self.prompt_tokens))
            self.completion_tokens = int(usage.get("completion_tokens", 0))
        return [d for choice in event.get("choices") or [] if (d := self._choice(choice)) is not None]

    def _choice(self, event: dict[str, Any]) -> TextDelta | None:
        index = int(event.get("index", 0))
        if not 0 <= index < len(self.choices):
            raise ValueError(f"choice {index} of a request for {len(self.choices)}")
        choice = self.choices[index]
        delta = event.get("delta")
        text = (
            str((delta or {}).get("content") or "")
            if isinstance(delta, dict)
            else str(event.get("text") or "")
        )
        logprobs = _logprobs(event.get("logprobs")) if self.item.sampling.logprobs else None
        if reason := event.get("finish_reason"):
            choice.finish = "length" if reason == "length" else "stop"
        if not text and not logprobs:
            return None
        choice.text += text
        choice.tokens += 1
        if logprobs:
            choice.logprobs += logprobs
        return TextDelta(text, index, tuple(logprobs) if logprobs is not None else None)

    def output(self) -> GenerationOutput:
        """The finished request: choice 0, the others in ``more``."""
        if not self.done and all(c.finish is None for c in self.choices):
            raise ValueError("the stream ended without a finish_reason or [DONE]")
        return self.so_far()

    def so_far(self) -> GenerationOutput:
        """What arrived until now (a request stopped mid-stream: a cancel)."""
        outs = [self._output(c) for c in self.choices]
        first, *more = outs
        return GenerationOutput(
            first.text,
            first.finish_reason,
            first.prompt_tokens,
            first.completion_tokens,
            first.logprobs,
            tuple(more),
        )

    def _output(self, choice: _Choice) -> GenerationOutput:
        tokens = choice.tokens
        if self.completion_tokens is not None and len(self.choices) == 1:
            tokens = self.completion_tokens  # the engine's own count, when it is one choice's
        logprobs = tuple(choice.logprobs) if self.item.sampling.logprobs else None
        return GenerationOutput(choice.text, choice.finish or "stop", self.prompt_tokens, tokens, logprobs)


def _logprobs(value: Any) -> list[TokenLogprob] | None:
    """Chat's ``{"content": [{token, logprob, top_logprobs}]}`` or the completions shape
    ``{tokens, token_logprobs, top_logprobs: [{token: logprob}]}``."""
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("content"), list):
        return [
            TokenLogprob(
                str(t["token"]),
                float(t["logprob"]),
                tuple(TopLogprob(str(a["token"]), float(a["logprob"])) for a in t.get("top_logprobs") or []),
            )
            for t in value["content"]
        ]
    tokens, values = value.get("tokens") or [], value.get("token_logprobs") or []
    tops = value.get("top_logprobs") or [None] * len(tokens)
    return [
        TokenLogprob(str(t), float(lp), tuple(TopLogprob(str(k), float(v)) for k, v in (top or {}).items()))
        for t, lp, top in zip(tokens, values, tops, strict=False)
    ]
