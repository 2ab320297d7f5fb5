"""A torch-free deterministic runner for tests: answers with the prompt reversed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from consumers.engine.runner import GenerationInput, GenerationOutput, TokenSink


class EchoRunner:
    name = "echo"
    max_context = 4096

    def count_tokens(self, prompt: str) -> int:
        return len(prompt.encode()) + 1

    def generate(
        self, batch: Sequence[GenerationInput], on_text: TokenSink | None = None
    ) -> list[GenerationOutput]:
        out = []
        for row, item in enumerate(batch):
            text = item.prompt[::-1][: item.sampling.max_tokens]
            cut = len(item.prompt) > item.sampling.max_tokens
            reason: Literal["stop", "length"] = "length" if cut else "stop"
            if on_text is not None:
                for start in range(0, len(text), 4):
                    on_text(row, text[start : start + 4])
            out.append(GenerationOutput(text, reason, self.count_tokens(item.prompt), len(text)))
        return out


class FailingRunner(EchoRunner):
    """Fails every batch: drives breaker and error-path tests (``--model fail``)."""

    name = "fail"

    def generate(
        self, batch: Sequence[GenerationInput], on_text: TokenSink | None = None
    ) -> list[GenerationOutput]:
        raise RuntimeError("injected model failure (model 'fail')")
