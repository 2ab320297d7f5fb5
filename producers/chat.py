"""Chat messages and the template that turns a conversation into one prompt."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import msgspec

from schemas import SamplingParams

Role = Literal["system", "user", "assistant"]


class ChatMessage(msgspec.Struct, frozen=True):
    role: Role
    content: str


ASSISTANT_TURN = "<|assistant|>\n"
TURN_END = "<|end|>"
"""Stop sequence: a model that starts the next turn has finished its own."""


def render(messages: Sequence[ChatMessage]) -> str:
    """``<|role|>\\ncontent<|end|>`` per message, then an open assistant turn."""
    if not messages:
        raise ValueError("a chat needs at least one message")
    turns = "".join(f"<|{m.role}|>\n{m.content}{TURN_END}\n" for m in messages)
    return turns + ASSISTANT_TURN


def with_turn_end(sampling: SamplingParams) -> SamplingParams:
    """The same sampling, also stopping where the model would start the next turn."""
    if TURN_END in sampling.stop:
        return sampling
    return msgspec.structs.replace(sampling, stop=(*sampling.stop, TURN_END))
