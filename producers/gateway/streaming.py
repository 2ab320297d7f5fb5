"""Server-sent events of a streamed completion: kinfer's token chunks and final result as
OpenAI's chunk sequence (a role delta per choice, text deltas, a finish per choice, usage)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from kinfer.producers.gateway import responses
from kinfer.producers.gateway.headers import rate_limit_headers
from kinfer.schemas import InferenceResult, TokenChunk

Items = AsyncIterator[TokenChunk | InferenceResult]


def sse(body: dict[str, Any]) -> str:
    return f"data: {json.dumps(body)}\n\n"


DONE = "data: [DONE]\n\n"


async def first_and_rest(items: Items) -> tuple[Items, dict[str, str]]:
    """Waits for the first item before the response starts, so an early error is a proper
    HTTP error (status and headers) rather than a broken stream; the first item also carries
    the rate-limit status for the response's headers."""
    first = await anext(items)

    async def chain() -> Items:
        yield first
        async for item in items:
            yield item

    return chain(), rate_limit_headers(first.rate_limit)


async def chat_events(items: Items, model: str, choices: int, include_usage: bool) -> AsyncIterator[str]:
    started = False
    async for item in items:
        rid = item.request_id
        if not started:
            started = True
            opening = [responses.chat_delta(i, {"role": "assistant", "content": ""}) for i in range(choices)]
            yield sse(responses.chat_chunk(rid, model, opening))
        if isinstance(item, TokenChunk):
            delta = responses.chat_delta(item.choice, {"content": item.text}, None, item.logprobs)
            yield sse(responses.chat_chunk(rid, model, [delta]))
            continue
        finishes = [responses.chat_delta(i, {}, finish) for i, _, finish, _ in responses.every_choice(item)]
        yield sse(responses.chat_chunk(rid, model, finishes))
        if include_usage:
            yield sse(responses.chat_chunk(rid, model, [], responses.usage(item)))
    yield DONE


async def completion_events(items: Items, model: str, choices: int, echoed: str) -> AsyncIterator[str]:
    """``echoed``: the prompt, sent first as each choice's opening text when asked for."""
    started = False
    async for item in items:
        rid = item.request_id
        if not started and echoed:
            started = True
            for i in range(choices):
                yield sse(responses.completion_chunk(rid, model, echoed, None, i))
        if isinstance(item, TokenChunk):
            yield sse(responses.completion_chunk(rid, model, item.text, None, item.choice, item.logprobs))
            continue
        for index, _, finish, _ in responses.every_choice(item):
            yield sse(responses.completion_chunk(rid, model, "", finish, index))
    yield DONE
