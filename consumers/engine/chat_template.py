"""kinfer's plain chat template, for models that bring none of their own (kinfer-tiny, echo).

A model with a template (a Hugging Face folder's ``chat_template``) is rendered with
that one instead, and stops at its end-of-turn token (``hf.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

from kinfer.schemas import ChatMessage

TURN_END = "<|end|>"


def render_plain(messages: Sequence[ChatMessage]) -> str:
    """``<|role|>\\ncontent<|end|>`` per message, then an open assistant turn."""
    turns = "".join(f"<|{m.role}|>\n{m.content}{TURN_END}\n" for m in messages)
    return turns + "<|assistant|>\n"
