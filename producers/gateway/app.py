"""`kinfer gateway`: POST /v1/chat/completions, POST /v1/completions, GET /v1/models.

Each call is a Kafka request sent by one shared :class:`AsyncClient` (its tenant
from the caller's API key), answered from the reply topic.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import make_asgi_app
from redis.asyncio import Redis

from kinfer.producers.chat import ChatMessage
from kinfer.producers.client import AsyncClient
from kinfer.producers.config import ClientConfig
from kinfer.producers.errors import RequestFailed
from kinfer.producers.gateway import metrics, wire
from kinfer.producers.gateway.config import GatewayConfig
from kinfer.producers.gateway.errors import error_response, from_failure
from kinfer.producers.gateway.headers import rate_limit_headers
from kinfer.producers.served_models import ServedModels
from kinfer.schemas import InferenceResult, InvalidMessage, SamplingParams, TokenChunk


def create_app(config: GatewayConfig, client_config: ClientConfig) -> FastAPI:
    client = AsyncClient(client_config)
    served = (
        ServedModels(Redis.from_url(client_config.redis_url), client_config.topic_prefix, config.regions)
        if client_config.redis_url
        else None
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await client.start()
        yield
        await client.close()
        if served is not None:
            await served.redis.aclose()

    app = FastAPI(title="kinfer gateway", lifespan=lifespan)
    app.mount("/metrics", make_asgi_app())

    @app.middleware("http")
    async def measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        if request.url.path.startswith("/v1/"):
            endpoint = request.url.path
            metrics.REQUESTS.labels(endpoint, str(response.status_code)).inc()
            metrics.LATENCY.labels(endpoint).observe(time.perf_counter() - started)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_body(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"msg": "invalid request body", "loc": ()}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error_response(
            400,
            f"{where}: {first['msg']}" if where else str(first["msg"]),
            "invalid_request_error",
            "invalid_request",
        )

    @app.exception_handler(InvalidMessage)
    async def breaks_contract(_request: Request, exc: InvalidMessage) -> JSONResponse:
        """Values the wire contract refuses (a temperature the sampler cannot use, a seed out
        of range): the caller's 400, never a 500."""
        return error_response(400, exc.message, "invalid_request_error", "invalid_request")

    @app.exception_handler(RequestFailed)
    async def failed(_request: Request, exc: RequestFailed) -> JSONResponse:
        return from_failure(exc)

    def tenant_of(request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        return config.tenant_for(key or None)

    def unauthorized() -> JSONResponse:
        return error_response(
            401,
            "missing or unknown API key (Authorization: Bearer <key>)",
            "invalid_request_error",
            "invalid_api_key",
        )

    async def model_check(model: str) -> JSONResponse | None:
        """404 for a model no live worker serves; unknown (no Redis) passes on to admission."""
        models = await served.current() if served is not None else None
        if models is None or model in models:
            return None
        if not models:
            message = "no worker is serving any model yet: start `kinfer worker`"
            return error_response(503, message, "server_error", "unavailable")
        return error_response(
            404,
            f"the model {model!r} does not exist; served: {', '.join(sorted(models))}",
            "invalid_request_error",
            "model_not_found",
        )

    def sampling(body: wire._Common) -> SamplingParams:
        return SamplingParams(
            max_tokens=body.new_tokens(),
            temperature=body.temperature,
            top_p=body.top_p,
            seed=body.seed,
            stop=body.stops(),
        )

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """For load balancers and Kubernetes probes: no key needed; up once the SDK client is."""
        return JSONResponse({"status": "ok"})

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        """What live workers serve now, from their heartbeats."""
        if tenant_of(request) is None:
            return unauthorized()
        models = (await served.current() if served is not None else None) or set()
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "kinfer"} for m in sorted(models)]
        return JSONResponse({"object": "list", "data": data})

    async def prepare(body: wire._Common, request: Request) -> dict[str, Any] | JSONResponse:
        """The SDK call's keyword arguments, or the error response that ends the call."""
        tenant = tenant_of(request)
        if tenant is None:
            return unauthorized()
        if (missing := await model_check(body.model)) is not None:
            return missing
        return {
            "sampling": sampling(body),
            "model": body.model,
            "user": body.user,
            "tenant": tenant,
            "timeout_s": config.timeout_s,
        }

    @app.post("/v1/chat/completions")
    async def chat_completions(body: wire.ChatCompletionRequest, request: Request) -> Response:
        params = await prepare(body, request)
        if isinstance(params, JSONResponse):
            return params
        messages = [ChatMessage(m.role, m.content) for m in body.messages]
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return await stream_chat(messages, params, body.model, include_usage)
        result = await client.chat(messages, **params)
        return JSONResponse(
            wire.chat_completion(result, body.model), headers=rate_limit_headers(result.rate_limit)
        )

    @app.post("/v1/completions")
    async def completions(body: wire.CompletionRequest, request: Request) -> Response:
        params = await prepare(body, request)
        if isinstance(params, JSONResponse):
            return params
        if body.stream:
            return await stream_completion(body.prompt, params, body.model)
        result = await client.generate(body.prompt, **params)
        return JSONResponse(
            wire.completion(result, body.model), headers=rate_limit_headers(result.rate_limit)
        )

    async def first_and_rest(
        items: AsyncIterator[TokenChunk | InferenceResult],
    ) -> tuple[AsyncIterator[TokenChunk | InferenceResult], dict[str, str]]:
        """Waits for the first item before the response starts, so an early error is a
        proper HTTP error (status and headers) rather than a broken stream; the first item
        also carries the rate-limit status for the response's headers."""
        first = await anext(items)

        async def chain() -> AsyncIterator[TokenChunk | InferenceResult]:
            yield first
            async for item in items:
                yield item

        return chain(), rate_limit_headers(first.rate_limit)

    async def stream_chat(
        messages: list[ChatMessage], params: dict[str, Any], model: str, include_usage: bool
    ) -> Response:
        items, limits = await first_and_rest(client.chat_stream(messages, **params))

        async def events() -> AsyncIterator[str]:
            started = False
            async for item in items:
                rid = item.request_id
                if not started:
                    started = True
                    yield sse(wire.chat_chunk(rid, model, {"role": "assistant", "content": ""}, None))
                if isinstance(item, TokenChunk):
                    yield sse(wire.chat_chunk(rid, model, {"content": item.text}, None))
                else:
                    yield sse(wire.chat_chunk(rid, model, {}, item.finish_reason))
                    if include_usage:
                        yield sse(
                            {
                                **wire.chat_chunk(rid, model, {}, None),
                                "choices": [],
                                "usage": wire.usage(item),
                            }
                        )
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream", headers=limits)

    async def stream_completion(prompt: str, params: dict[str, Any], model: str) -> Response:
        items, limits = await first_and_rest(client.stream(prompt, **params))

        async def events() -> AsyncIterator[str]:
            async for item in items:
                if isinstance(item, TokenChunk):
                    yield sse(wire.completion_chunk(item.request_id, model, item.text, None))
                else:
                    yield sse(wire.completion_chunk(item.request_id, model, "", item.finish_reason))
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream", headers=limits)

    return app


def sse(body: dict[str, Any]) -> str:
    return f"data: {json.dumps(body)}\n\n"
