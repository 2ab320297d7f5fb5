"""What to do with each dispatched record before any compute: pure, clock injected."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kinfer.schemas import (
    ChatMessage,
    ErrorCode,
    ErrorReply,
    InferenceRequest,
    InvalidMessage,
    SamplingParams,
    decode_request,
)
from kinfer.schemas.codec import reply_target
from kinfer.schemas.refusals import Refused


@dataclass(frozen=True)
class Runnable:
    request: InferenceRequest
    tokens: int
    """(Prompt tokens + max new tokens) x n choices: the request's share of the batch budget."""
    prompt: str
    """What the model continues: the prompt, or the messages through the chat template."""


def triage(
    value: bytes | None,
    record_headers: dict[str, str],
    *,
    now_ms: int,
    count_tokens: Callable[[str], int],
    max_context: int,
    render_chat: Callable[[Sequence[ChatMessage]], str],
    served_model: str,
    sampling_problem: Callable[[SamplingParams], str | None],
) -> Runnable | Refused:
    """Decode one record and decide: run it, or answer it with an error now."""
    try:
        request = decode_request(value or b"")
    except InvalidMessage as exc:
        request_id, address = reply_target(value or b"", record_headers)
        return Refused(
            ErrorReply(request_id=request_id, code=ErrorCode.INVALID_REQUEST, message=exc.message),
            address,
            None,
            dead_letter_reason=exc.message,
        )
    if request.deadline_ms is not None and request.deadline_ms <= now_ms:
        late = now_ms - request.deadline_ms
        return _refuse(request, ErrorCode.DEADLINE_EXCEEDED, f"deadline passed {late} ms before compute")
    if request.model is not None and request.model != served_model:
        message = f"model {request.model!r} is not served by this region's workers ({served_model!r} is)"
        return _refuse(request, ErrorCode.INVALID_REQUEST, message)
    if (problem := sampling_problem(request.sampling)) is not None:
        return _refuse(request, ErrorCode.INVALID_REQUEST, problem)
    prompt = request.prompt or render_chat(request.messages)
    prompt_tokens = count_tokens(prompt)
    total = prompt_tokens + request.sampling.max_tokens
    if total > max_context:
        return _refuse(
            request,
            ErrorCode.INVALID_REQUEST,
            f"prompt ({prompt_tokens} tokens) + max_tokens ({request.sampling.max_tokens}) "
            f"exceeds the model's context of {max_context} tokens",
        )
    return Runnable(request, total * request.sampling.n, prompt)


def _refuse(request: InferenceRequest, code: ErrorCode, message: str) -> Refused:
    return Refused(
        ErrorReply(request_id=request.request_id, code=code, message=message), request.reply_to, request
    )
