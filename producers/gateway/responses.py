"""OpenAI response bodies built from kinfer's answers: completions, their stream chunks, and
log-probabilities in both of OpenAI's shapes (chat's list of tokens, the legacy columns)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from kinfer.schemas import InferenceResult, TokenLogprob


def usage(result: InferenceResult) -> dict[str, int]:
    u = result.usage
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
    }


def every_choice(result: InferenceResult) -> list[tuple[int, str, str, tuple[TokenLogprob, ...] | None]]:
    """(index, text, finish reason, log-probabilities) of each of the result's ``n`` choices."""
    first = (0, result.text, result.finish_reason, result.logprobs)
    return [first, *((c.index, c.text, c.finish_reason, c.logprobs) for c in result.choices)]


def _alternative(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}


def chat_logprobs(tokens: Sequence[TokenLogprob] | None) -> dict[str, Any] | None:
    """Chat's shape: ``{"content": [{token, logprob, bytes, top_logprobs}], "refusal": None}``."""
    if tokens is None:
        return None
    content = [
        {
            **_alternative(t.token, t.logprob),
            "top_logprobs": [_alternative(a.token, a.logprob) for a in t.top],
        }
        for t in tokens
    ]
    return {"content": content, "refusal": None}


def completion_logprobs(tokens: Sequence[TokenLogprob] | None, offset: int = 0) -> dict[str, Any] | None:
    """The legacy completions shape: parallel lists, each position's alternatives as a dict,
    and where each token starts in the returned text (``offset``: the text before them)."""
    if tokens is None:
        return None
    offsets = []
    for t in tokens:
        offsets.append(offset)
        offset += len(t.token)
    return {
        "tokens": [t.token for t in tokens],
        "token_logprobs": [t.logprob for t in tokens],
        "top_logprobs": [{a.token: a.logprob for a in t.top} for t in tokens],
        "text_offset": offsets,
    }


def chat_completion(result: InferenceResult, model: str) -> dict[str, Any]:
    choices = [
        {
            "index": index,
            "message": {"role": "assistant", "content": text, "refusal": None},
            "finish_reason": finish,
            "logprobs": chat_logprobs(logprobs),
        }
        for index, text, finish, logprobs in every_choice(result)
    ]
    return _completed("chatcmpl", "chat.completion", result, model, choices)


def completion(result: InferenceResult, model: str, echoed: str = "") -> dict[str, Any]:
    """``echoed``: the prompt, when the request asked for it back before the completion."""
    choices = [
        {
            "index": index,
            "text": echoed + text,
            "finish_reason": finish,
            "logprobs": completion_logprobs(logprobs, len(echoed)),
        }
        for index, text, finish, logprobs in every_choice(result)
    ]
    return _completed("cmpl", "text_completion", result, model, choices)


def _completed(
    id_prefix: str, kind: str, result: InferenceResult, model: str, choices: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "id": f"{id_prefix}-{result.request_id}",
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage(result),
    }


def chat_chunk(
    request_id: str, model: str, choices: list[dict[str, Any]], usage_body: dict[str, int] | None = None
) -> dict[str, Any]:
    """One ``chat.completion.chunk``; ``choices``: each ``{index, delta, finish_reason, logprobs}``."""
    body: dict[str, Any] = {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
    }
    if usage_body is not None:
        body["usage"] = usage_body
    return body


def chat_delta(
    index: int,
    delta: dict[str, str],
    finish: str | None = None,
    logprobs: Sequence[TokenLogprob] | None = None,
) -> dict[str, Any]:
    return {"index": index, "delta": delta, "finish_reason": finish, "logprobs": chat_logprobs(logprobs)}


def completion_chunk(
    request_id: str,
    model: str,
    text: str,
    finish: str | None,
    index: int = 0,
    logprobs: Sequence[TokenLogprob] | None = None,
) -> dict[str, Any]:
    choice = {
        "index": index,
        "text": text,
        "finish_reason": finish,
        "logprobs": completion_logprobs(logprobs),
    }
    return {
        "id": f"cmpl-{request_id}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
    }
