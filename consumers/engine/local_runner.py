"""What every in-process engine's runner shares: its tokens come from a :class:`TextCodec` and
it decodes in kinfer's :class:`DecodeBatch`, so the knobs it accepts, how it counts and renders,
and how it generates are the same whatever holds the KV state (torch, llama.cpp)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kinfer.consumers.engine.constraints import schema_problem
from kinfer.consumers.engine.decode_batch import DecodeBatch
from kinfer.consumers.engine.model_api import TextCodec
from kinfer.consumers.engine.runner import (
    GenerationInput,
    GenerationOutput,
    TokenSink,
    bias_problem,
    decode_all,
)
from kinfer.schemas import ChatMessage, SamplingParams


class LocalRunner:
    """Base of the in-process :class:`ModelRunner` s; a subclass gives ``max_context`` and
    ``batch`` (the :class:`DecodeBatch` over its own KV store)."""

    tokenizer: TextCodec
    _name: str

    @property
    def name(self) -> str:
        return self._name

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def sampling_problem(self, sampling: SamplingParams) -> str | None:
        if (problem := bias_problem(sampling, self.vocab_size, self.name)) is not None:
            return problem
        if sampling.json_schema is None:
            return None
        return schema_problem(sampling.json_schema, self.tokenizer.grammar_tokenizer())

    def count_tokens(self, prompt: str) -> int:
        return len(self.tokenizer.encode(prompt))

    def unavailable(self) -> str | None:
        return None  # in this process: up while the process is

    def render_chat(self, messages: Sequence[ChatMessage]) -> str:
        return self.tokenizer.render_chat(messages)

    def batch(self) -> DecodeBatch[Any]:
        raise NotImplementedError

    def generate(
        self, batch: Sequence[GenerationInput], on_text: TokenSink | None = None
    ) -> list[GenerationOutput]:
        """All of ``batch`` at once: a continuous batch that nothing joins later."""
        return decode_all(self.batch(), batch, on_text)
