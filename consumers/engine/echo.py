"""A torch-free deterministic runner for tests: answers with the prompt reversed."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Generic, Literal, TypeVar

from kinfer.consumers.engine.chat_template import render_plain
from kinfer.consumers.engine.runner import (
    Ended,
    GenerationInput,
    GenerationOutput,
    TextDelta,
    TokenSink,
    bias_problem,
)
from kinfer.schemas import ChatMessage, SamplingParams, TokenLogprob

K = TypeVar("K")


class EchoRunner:
    """One character is one token, certain (log-probability 0); ``n`` choices are the same."""

    name = "echo"
    max_context = 4096
    vocab_size = 0x110000

    def count_tokens(self, prompt: str) -> int:
        return len(prompt.encode()) + 1

    def unavailable(self) -> str | None:
        return None  # in this process: up while the process is

    def sampling_problem(self, sampling: SamplingParams) -> str | None:
        if sampling.json_schema is not None:
            return f"model {self.name!r} cannot constrain its answer to a JSON Schema"
        return bias_problem(sampling, self.vocab_size, self.name)

    def render_chat(self, messages: Sequence[ChatMessage]) -> str:
        return render_plain(messages)

    def batch(self) -> OneStepBatch[Any]:
        return OneStepBatch(self)

    def generate(
        self, batch: Sequence[GenerationInput], on_text: TokenSink | None = None
    ) -> list[GenerationOutput]:
        out = []
        for row, item in enumerate(batch):
            text = item.prompt[::-1][: item.sampling.max_tokens]
            cut = len(item.prompt) > item.sampling.max_tokens
            reason: Literal["stop", "length"] = "length" if cut else "stop"
            logprobs = tuple(TokenLogprob(c, 0.0) for c in text) if item.sampling.logprobs else None
            if on_text is not None:
                for choice in range(item.sampling.n):
                    for start in range(0, len(text), 4):
                        piece = logprobs[start : start + 4] if logprobs is not None else None
                        on_text(row, TextDelta(text[start : start + 4], choice, piece))
            one = GenerationOutput(text, reason, self.count_tokens(item.prompt), len(text), logprobs)
            out.append(dataclasses.replace(one, more=(one,) * (item.sampling.n - 1)))
        return out


class FailingRunner(EchoRunner):
    """Fails every batch: drives breaker and error-path tests (``--model fail``)."""

    name = "fail"

    def generate(
        self, batch: Sequence[GenerationInput], on_text: TokenSink | None = None
    ) -> list[GenerationOutput]:
        raise RuntimeError("injected model failure (model 'fail')")


class OneStepBatch(Generic[K]):
    """A running batch for runners without a decode loop: everything finishes in one step."""

    def __init__(self, runner: EchoRunner) -> None:
        self.runner = runner
        self.items: list[tuple[K, GenerationInput]] = []

    def __len__(self) -> int:
        return len(self.items)

    def keys(self) -> list[K]:
        return [key for key, _ in self.items]

    def join(self, items: Sequence[tuple[K, GenerationInput]]) -> None:
        self.items += items

    def step(self, on_text: Callable[[K, TextDelta], None] | None = None) -> list[tuple[K, Ended]]:
        items, self.items = self.items, []
        keys = [key for key, _ in items]
        sink = (lambda row, text: on_text(keys[row], text)) if on_text is not None else None
        outputs = self.runner.generate([item for _, item in items], sink)
        return list(zip(keys, outputs, strict=True))

    def remove(self, keep: Callable[[K], bool]) -> list[K]:
        dropped = [key for key, _ in self.items if not keep(key)]
        self.items = [(key, item) for key, item in self.items if keep(key)]
        return dropped

    def progress(self, key: K) -> GenerationOutput | None:
        return None  # nothing is generated before its one step
