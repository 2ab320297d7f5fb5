"""The seam between the worker loop and a model: what to generate, what came out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from kinfer.schemas import ChatMessage, ErrorCode, SamplingParams, TokenLogprob


class RankGroupLost(RuntimeError):
    """A rank of a parallel worker died or hung. Not a failure of the requests in the batch:
    the worker must exit (its partitions move on) rather than answer them with an error."""


class EngineLoadFailed(ValueError):
    """The engine cannot serve the model: a file that is not a model it loads, an engine
    server that does not answer or does not serve it. The message names the cause."""


@dataclass(frozen=True)
class GenerationInput:
    prompt: str
    """What the model continues (a chat already through the model's template)."""
    sampling: SamplingParams
    messages: tuple[ChatMessage, ...] = ()
    """The chat ``prompt`` was rendered from, for an engine server that applies its own template."""


@dataclass(frozen=True)
class GenerationOutput:
    text: str
    finish_reason: Literal["stop", "length"]
    prompt_tokens: int
    completion_tokens: int
    """Of this choice alone."""
    logprobs: tuple[TokenLogprob, ...] | None = None
    """Per token of ``text``, when the request asked for them."""
    more: tuple[GenerationOutput, ...] = ()
    """Choices 1..n-1 of a request with ``n`` > 1 (this output is choice 0)."""


@dataclass(frozen=True)
class GenerationError:
    """One sequence could not be generated, through no fault of its neighbours (an engine
    server refused it, or went away while it ran)."""

    code: ErrorCode
    message: str


@dataclass(frozen=True)
class TextDelta:
    """Text of one choice that became final, and the log-probabilities of its tokens."""

    text: str
    choice: int = 0
    logprobs: tuple[TokenLogprob, ...] | None = None


TokenSink = Callable[[int, TextDelta], None]
"""Called with (index in the batch, new text) as text becomes final, for streaming."""


K = TypeVar("K")

Ended = GenerationOutput | GenerationError
"""How a sequence left the batch: finished, or failed alone."""


class RunningBatch(Protocol[K]):
    """Sequences decoding together; they join and leave between steps (keys are the caller's)."""

    def __len__(self) -> int: ...

    def keys(self) -> list[K]:
        """Keys of the sequences decoding now."""
        ...

    def join(self, items: Sequence[tuple[K, GenerationInput]]) -> None: ...

    def step(self, on_text: Callable[[K, TextDelta], None] | None = None) -> list[tuple[K, Ended]]:
        """Advance every sequence one token; return the ones that finished (they leave; a
        request with ``n`` choices when the last of them finished), or failed alone. Raising
        fails every sequence in the batch."""
        ...

    def remove(self, keep: Callable[[K], bool]) -> list[K]:
        """Drop sequences whose key ``keep`` refuses (their partitions moved away, their
        deadline passed, they were cancelled): they stop decoding now."""
        ...

    def progress(self, key: K) -> GenerationOutput | None:
        """What the sequence has generated so far (all its choices), for a cancelled request's
        answer; None when it is not decoding here or nothing can be told."""
        ...


class ModelRunner(Protocol):
    """Runs one batch of generations; implementations may hold torch state."""

    @property
    def name(self) -> str: ...

    @property
    def max_context(self) -> int:
        """Most tokens (prompt + new) one sequence may hold."""
        ...

    @property
    def vocab_size(self) -> int:
        """Token ids a request may name (``logit_bias``) are below this."""
        ...

    def sampling_problem(self, sampling: SamplingParams) -> str | None:
        """Why this model cannot decode with these knobs (a ``logit_bias`` id outside its
        vocabulary, a ``json_schema`` it cannot compile), or None."""
        ...

    def count_tokens(self, prompt: str) -> int: ...

    def render_chat(self, messages: Sequence[ChatMessage]) -> str:
        """The prompt for a chat: the model's own chat template, with an open assistant turn."""
        ...

    def batch(self) -> RunningBatch[Any]:
        """An empty continuous batch."""
        ...

    def unavailable(self) -> str | None:
        """Why the engine cannot take work now (an engine server that does not answer), or
        None. The worker stops taking records while it says so."""
        ...

    def generate(
        self, batch: Sequence[GenerationInput], on_text: TokenSink | None = None
    ) -> list[GenerationOutput]:
        """One output per input, in order. Blocking: call it off any event loop.

        ``on_text`` receives each row's text as it becomes final: never a stop
        sequence or a part of one, never half a UTF-8 character.
        """
        ...


def bias_problem(params: SamplingParams, vocab_size: int, model: str) -> str | None:
    """Why ``logit_bias`` names tokens the model does not have, or None."""
    unknown = sorted(t for t in params.logit_bias if t >= vocab_size)
    if not unknown:
        return None
    return f"logit_bias names token ids {unknown[:5]} outside {model!r}'s vocabulary of {vocab_size}"


def decode_all(
    running: RunningBatch[int], batch: Sequence[GenerationInput], on_text: TokenSink | None = None
) -> list[GenerationOutput]:
    """Decode ``batch`` in ``running`` until every sequence ended; outputs in input order (a
    sequence that failed alone fails the call)."""
    running.join(list(enumerate(batch)))
    outputs: dict[int, GenerationOutput] = {}
    while running:
        for index, ended in running.step(on_text):
            if isinstance(ended, GenerationError):
                raise RuntimeError(f"{ended.code.value}: {ended.message}")
            outputs[index] = ended
    return [outputs[i] for i in range(len(batch))]
