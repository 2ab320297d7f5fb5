"""Chat messages. A chat travels as messages on the request; the worker renders it with
the served model's own chat template and stops at its end of turn."""

from __future__ import annotations

from kinfer.schemas import ChatMessage
from kinfer.schemas.messages import ChatRole as Role

__all__ = ["ChatMessage", "Role"]
