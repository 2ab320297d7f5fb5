"""Conversation history in Redis, so workers stay stateless: the SDK prepends a
session's earlier turns to each new chat call and appends the new turn after."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
from redis.asyncio import Redis

from kinfer.producers.chat import ChatMessage

_decoder = msgspec.json.Decoder(ChatMessage)


class SessionStore:
    def __init__(self, client: Redis, prefix: str, *, ttl_s: int, max_messages: int, max_bytes: int) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.max_messages = max_messages
        self.max_bytes = max_bytes

    def key(self, session_id: str) -> str:
        return f"{self.prefix}:session:{session_id}"

    async def history(self, session_id: str) -> list[ChatMessage]:
        """Earlier messages, oldest first, trimmed from the front to fit ``max_bytes``."""
        raw = await self.client.lrange(self.key(session_id), -self.max_messages, -1)
        messages = [_decoder.decode(item) for item in raw]
        size = sum(len(m.content.encode()) for m in messages)
        while messages and size > self.max_bytes:
            size -= len(messages.pop(0).content.encode())
        return messages

    async def append(self, session_id: str, messages: Sequence[ChatMessage]) -> None:
        key = self.key(session_id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.rpush(key, *[msgspec.json.encode(m) for m in messages])
            pipe.ltrim(key, -self.max_messages, -1)
            pipe.expire(key, self.ttl_s)
            await pipe.execute()

    async def clear(self, session_id: str) -> None:
        await self.client.delete(self.key(session_id))
