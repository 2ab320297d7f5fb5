"""`kinfer gateway`: POST /v1/chat/completions, POST /v1/completions, GET /v1/models.

Each call is a Kafka request sent by one shared :class:`AsyncClient` (its tenant
from the caller's API key), answered from the reply topic.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import make_asgi_app
from redis.asyncio import Redis

from kinfer.producers.client import AsyncClient
from kinfer.producers.config import ClientConfig
from kinfer.producers.errors import RequestFailed
from kinfer.producers.gateway import metrics, responses, wire
from kinfer.producers.gateway.config import GatewayConfig
from kinfer.producers.gateway.disconnect import CallerGone, Canceller
from kinfer.producers.gateway.errors import error_response, from_failure
from kinfer.producers.gateway.headers import rate_limit_headers
from kinfer.producers.gateway.streaming import chat_events, completion_events, first_and_rest
from kinfer.producers.served_models import ServedModels
from kinfer.schemas import InvalidMessage
from kinfer.schemas.redis_bounds import CLIENT_S, bounded


def create_app(config: GatewayConfig, client_config: ClientConfig) -> FastAPI:
    client = AsyncClient(client_config)
    canceller = Canceller(client)
    served = (
        ServedModels(
            Redis.from_url(client_config.redis_url, **bounded(CLIENT_S, asyncio=True)),
            client_config.topic_prefix,
            config.regions,
        )
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
            param=where or None,
        )

    @app.exception_handler(InvalidMessage)
    async def breaks_contract(_request: Request, exc: InvalidMessage) -> JSONResponse:
        """Values the wire contract refuses (a temperature the sampler cannot use, a seed out
        of range): the caller's 400, never a 500."""
        return error_response(400, exc.message, "invalid_request_error", "invalid_request")

    @app.exception_handler(CallerGone)
    async def gone(_request: Request, _exc: CallerGone) -> Response:
        return Response(status_code=499)  # nginx's "client closed request": nobody reads it

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

    async def prepare(
        body: wire.ChatCompletionRequest | wire.CompletionRequest, request: Request
    ) -> dict[str, Any] | JSONResponse:
        """The SDK call's keyword arguments, or the error response that ends the call."""
        tenant = tenant_of(request)
        if tenant is None:
            return unauthorized()
        if (refusal := body.refused()) is not None:
            param, why = refusal
            return error_response(400, why, "invalid_request_error", "unsupported_parameter", param=param)
        if (missing := await model_check(body.model)) is not None:
            return missing
        return {
            "sampling": body.sampling(),
            "model": body.model,
            "user": body.user,
            "tenant": tenant,
            "timeout_s": config.timeout_s,
            "request_id": uuid.uuid4().hex,  # known here: a caller that goes away cancels it
        }

    @app.post("/v1/chat/completions")
    async def chat_completions(body: wire.ChatCompletionRequest, request: Request) -> Response:
        params = await prepare(body, request)
        if isinstance(params, JSONResponse):
            return params
        rid, tenant = params["request_id"], params["tenant"]
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            first = first_and_rest(client.chat_stream(body.chat(), **params))
            items, limits = await canceller.unless_gone(request, first, rid, tenant)
            items = canceller.cancel_if_abandoned(items, rid, tenant)
            events = chat_events(items, body.model, body.choices, include_usage)
            return StreamingResponse(events, media_type="text/event-stream", headers=limits)
        result = await canceller.unless_gone(request, client.chat(body.chat(), **params), rid, tenant)
        return JSONResponse(
            responses.chat_completion(result, body.model), headers=rate_limit_headers(result.rate_limit)
        )

    @app.post("/v1/completions")
    async def completions(body: wire.CompletionRequest, request: Request) -> Response:
        params = await prepare(body, request)
        if isinstance(params, JSONResponse):
            return params
        echoed = body.text() if body.echo else ""
        rid, tenant = params["request_id"], params["tenant"]
        if body.stream:
            first = first_and_rest(client.stream(body.text(), **params))
            items, limits = await canceller.unless_gone(request, first, rid, tenant)
            items = canceller.cancel_if_abandoned(items, rid, tenant)
            events = completion_events(items, body.model, body.choices, echoed)
            return StreamingResponse(events, media_type="text/event-stream", headers=limits)
        result = await canceller.unless_gone(request, client.generate(body.text(), **params), rid, tenant)
        return JSONResponse(
            responses.completion(result, body.model, echoed), headers=rate_limit_headers(result.rate_limit)
        )

    return app
