"""What the decode batch needs from a model and its tokenizer, whatever their origin."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch

from kinfer.consumers.engine.constraints import GrammarTokenizer
from kinfer.schemas import ChatMessage

KVCache = list[tuple[torch.Tensor, torch.Tensor]]
"""Per layer: keys and values, each (batch, kv_heads, seq, head_dim)."""


class CausalLM(Protocol):
    """A decoder that takes left-padded input and a per-layer KV cache."""

    @property
    def max_context(self) -> int: ...

    def __call__(
        self, ids: torch.Tensor, key_mask: torch.Tensor, positions: torch.Tensor, past: KVCache | None = None
    ) -> tuple[torch.Tensor, KVCache]:
        """Logits of each row's last position (B, vocab) and the extended cache."""
        ...


class Detokenizer(Protocol):
    def push(self, token: int) -> str:
        """Text that became final with this token (may be empty)."""
        ...


class TextCodec(Protocol):
    pad_id: int
    eos_ids: frozenset[int]
    vocab_size: int
    """Ids of the tokenizer's tokens are below this (the model may have more logits)."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str:
        """Text of the tokens, special ones left out (a log-probability's token)."""
        ...

    def grammar_tokenizer(self) -> GrammarTokenizer:
        """The vocabulary as constrained decoding sees it (built once, on first use)."""
        ...

    def detokenizer(self) -> Detokenizer: ...

    def render_chat(self, messages: Sequence[ChatMessage]) -> str:
        """A chat as one prompt, through the model's template (kinfer's plain one if it has none)."""
        ...
