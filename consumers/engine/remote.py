"""Any OpenAI-compatible engine server behind the worker (``--engine openai``): vLLM, SGLang,
TGI, llama.cpp's ``llama-server``.

The worker keeps Kafka, exactly-once answers, deadlines and its window of requests in flight
(its row limit); each request becomes one streaming ``/chat/completions`` call (a chat: the
engine applies its own template) or ``/completions`` call (a prompt), and the engine batches
them itself. Streams run on one asyncio loop in a background thread; :meth:`RemoteBatch.step`
hands the worker what arrived since the last step. Removing a request closes its stream, so
the engine stops decoding it.

Errors keep their owner: a 4xx is that request's ``invalid_request``; a 5xx, a dropped
connection or an answer that is not OpenAI's shape is its ``unavailable`` (which the breakers
and the health rule count); while the engine does not answer at all, :meth:`unavailable`
says so and the worker stops taking records instead of failing them.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx
import msgspec
import structlog

from kinfer.consumers.engine.chat_template import render_plain
from kinfer.consumers.engine.openai_wire import StreamState, request_body
from kinfer.consumers.engine.runner import (
    EngineLoadFailed,
    GenerationError,
    GenerationInput,
    GenerationOutput,
    TextDelta,
    TokenSink,
    decode_all,
)
from kinfer.schemas import ChatMessage, ErrorCode, SamplingParams

K = TypeVar("K")
log = structlog.get_logger(__name__)

STEP_WAIT_S = 0.02
"""How long a step waits for the first event when none is there: the worker polls Kafka
between steps, so this bounds how late a new record joins."""
PROBE_EVERY_S = 1.0
"""How often a worker whose engine is away asks it again."""


@dataclass(frozen=True)
class RemoteConfig:
    url: str
    """API root, e.g. http://127.0.0.1:8000/v1."""
    api_key: str | None = None
    in_flight: int = 32
    """Most streams open at once (the worker's row limit)."""
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 120.0
    """Longest silence inside a stream before it counts as a dropped connection."""


@dataclass
class _Stream(Generic[K]):
    key: K
    state: StreamState
    future: Future[None] | None = None


class RemoteRunner:
    """A :class:`ModelRunner` over an engine server."""

    def __init__(self, config: RemoteConfig, engine_model: str, *, name: str, max_context: int) -> None:
        self.config = config
        self.engine_model = engine_model
        self._name = name
        self._max_context = max_context
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="engine-streams", daemon=True)
        self._thread.start()
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        timeout = httpx.Timeout(config.read_timeout_s, connect=config.connect_timeout_s)
        limits = httpx.Limits(
            max_connections=config.in_flight + 2, max_keepalive_connections=config.in_flight
        )
        self.client: httpx.AsyncClient = self._call(_make_client(config.url, headers, timeout, limits))
        self._down: str | None = None
        self._probed = 0.0

    @property
    def name(self) -> str:
        return self._name

    @property
    def max_context(self) -> int:
        return self._max_context

    vocab_size = 1 << 31
    """The engine checks ``logit_bias`` ids against its own vocabulary (a 400 if outside)."""

    def sampling_problem(self, sampling: SamplingParams) -> str | None:
        return None  # the engine refuses what it cannot do, and that refusal is the answer

    def count_tokens(self, prompt: str) -> int:
        """An estimate (about 4 bytes a token, as BPE vocabularies make of text) for the batch
        budget and the context check. Too low at worst lets the engine check the context itself:
        its 400 is the request's ``invalid_request``. Answers carry the engine's own count."""
        return len(prompt.encode("utf-8", "surrogatepass")) // 4 + 1

    def render_chat(self, messages: Sequence[ChatMessage]) -> str:
        return render_plain(messages)  # only counted: the engine renders chats with its template

    def batch(self) -> RemoteBatch[Any]:
        return RemoteBatch(self)

    def generate(
        self, batch: Sequence[GenerationInput], on_text: TokenSink | None = None
    ) -> list[GenerationOutput]:
        return decode_all(self.batch(), batch, on_text)

    def unavailable(self) -> str | None:
        """None when the engine answers; a probe at most once a second while it does not."""
        if self._down is not None and time.monotonic() - self._probed >= PROBE_EVERY_S:
            self._probed = time.monotonic()
            self._down = self._call(_probe(self.client))
            if self._down is None:
                log.info("engine.back", url=self.config.url)
        return self._down

    def went_away(self, why: str) -> None:
        if self._down is None:
            log.warning("engine.away", url=self.config.url, reason=why)
        self._down, self._probed = why, time.monotonic()

    def submit(self, coroutine: Any) -> Future[None]:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def close(self) -> None:
        """Close the connections and the streams' loop (the worker's process ends otherwise)."""
        if self._loop.is_closed():
            return
        self._call(self.client.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


class RemoteBatch(Generic[K]):
    """Requests streaming from the engine; they finish in any order."""

    def __init__(self, runner: RemoteRunner) -> None:
        self.runner = runner
        self._streams: dict[int, _Stream[K]] = {}
        self._events: queue.SimpleQueue[tuple[int, TextDelta | GenerationOutput | GenerationError]] = (
            queue.SimpleQueue()
        )
        self._ids = 0

    def __len__(self) -> int:
        return len(self._streams)

    def keys(self) -> list[K]:
        return [s.key for s in self._streams.values()]

    def join(self, items: Sequence[tuple[K, GenerationInput]]) -> None:
        for key, item in items:
            ident, self._ids = self._ids, self._ids + 1
            stream = _Stream(key, StreamState(item, self.runner.count_tokens(item.prompt)))
            self._streams[ident] = stream
            stream.future = self.runner.submit(self._run(ident, item))

    def step(
        self, on_text: Callable[[K, TextDelta], None] | None = None
    ) -> list[tuple[K, GenerationOutput | GenerationError]]:
        done: list[tuple[K, GenerationOutput | GenerationError]] = []
        try:
            events = [self._events.get(timeout=STEP_WAIT_S)] if self._streams else []
        except queue.Empty:
            return done
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                break
        for ident, event in events:
            stream = self._streams.get(ident)
            if stream is None:
                continue  # removed while its last words were in flight
            if isinstance(event, TextDelta):
                if on_text is not None:
                    on_text(stream.key, event)
                continue
            del self._streams[ident]
            done.append((stream.key, event))
        return done

    def remove(self, keep: Callable[[K], bool]) -> list[K]:
        dropped = [(ident, s) for ident, s in self._streams.items() if not keep(s.key)]
        for ident, stream in dropped:
            del self._streams[ident]
            if stream.future is not None:
                stream.future.cancel()  # closes the HTTP stream: the engine stops decoding it
        return [stream.key for _, stream in dropped]

    def progress(self, key: K) -> GenerationOutput | None:
        for stream in list(self._streams.values()):
            if stream.key == key:
                return stream.state.so_far()
        return None

    async def _run(self, ident: int, item: GenerationInput) -> None:
        state = self._streams[ident].state
        runner = self.runner
        path, body = request_body(item, runner.engine_model)
        try:
            async with runner.client.stream("POST", path, json=body) as response:
                if response.status_code != 200:
                    await response.aread()
                    self._events.put((ident, _refusal(response)))
                    if response.status_code >= 500:
                        runner.went_away(f"HTTP {response.status_code} from {path}")
                    return
                async for line in response.aiter_lines():
                    for delta in state.feed(line):
                        self._events.put((ident, delta))
                    if state.done:
                        break
            self._events.put((ident, state.output()))
        except asyncio.CancelledError:
            raise
        except (httpx.HTTPError, OSError) as exc:
            why = f"engine server connection failed: {type(exc).__name__}: {exc}"[:300]
            runner.went_away(why)
            self._events.put((ident, GenerationError(ErrorCode.UNAVAILABLE, why)))
        except (msgspec.DecodeError, ValueError, KeyError, TypeError) as exc:
            why = f"engine server answered a non-OpenAI shape: {type(exc).__name__}: {exc}"[:300]
            self._events.put((ident, GenerationError(ErrorCode.UNAVAILABLE, why)))


def _refusal(response: httpx.Response) -> GenerationError:
    """An engine's error answer as the request's: 4xx is the request's fault, 5xx the engine's."""
    text = response.text.strip()[:300]
    try:
        message = str(msgspec.json.decode(response.content)["error"]["message"])[:300]
    except (msgspec.DecodeError, KeyError, TypeError, IndexError):
        message = text
    code = ErrorCode.INVALID_REQUEST if response.status_code < 500 else ErrorCode.UNAVAILABLE
    return GenerationError(code, f"engine server refused it (HTTP {response.status_code}): {message}")


async def _make_client(
    url: str, headers: dict[str, str], timeout: httpx.Timeout, limits: httpx.Limits
) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url.rstrip("/") + "/", headers=headers, timeout=timeout, limits=limits)


async def _probe(client: httpx.AsyncClient) -> str | None:
    try:
        response = await client.get("models", timeout=2.0)
    except (httpx.HTTPError, OSError) as exc:
        return f"engine server does not answer: {type(exc).__name__}: {exc}"[:300]
    return None if response.status_code == 200 else f"engine server answers HTTP {response.status_code}"


@dataclass
class EngineInfo:
    """What the engine server says it serves."""

    models: list[str] = field(default_factory=list)
    max_context: int | None = None


def connect(config: RemoteConfig, model: str, *, served_name: str | None = None) -> RemoteRunner:
    """A runner for the engine at ``config.url``; :class:`EngineLoadFailed` when it does not
    answer, answers something else than OpenAI's ``/models``, or does not serve ``model``."""
    info = _describe(config)
    if model in info.models:
        engine_model = model
    elif len(info.models) == 1:
        engine_model = info.models[0]  # a server of one model: whatever kinfer calls it
        log.info("engine.model", engine_model=engine_model, served_as=served_name or model)
    else:
        raise EngineLoadFailed(f"engine server at {config.url} serves {info.models}, not {model!r}")
    context = info.max_context or 4096
    return RemoteRunner(config, engine_model, name=served_name or model, max_context=context)


def _describe(config: RemoteConfig) -> EngineInfo:
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    root = config.url.rstrip("/")
    try:
        response = httpx.get(f"{root}/models", headers=headers, timeout=config.connect_timeout_s)
    except httpx.HTTPError as exc:
        raise EngineLoadFailed(f"engine server at {config.url} does not answer: {exc}") from exc
    if response.status_code != 200:
        raise EngineLoadFailed(f"engine server at {root}/models answered HTTP {response.status_code}")
    try:
        listed = msgspec.json.decode(response.content)["data"]
        info = EngineInfo([str(m["id"]) for m in listed])
    except (msgspec.DecodeError, KeyError, TypeError) as exc:
        raise EngineLoadFailed(f"{root}/models is not an OpenAI model list: {response.text[:200]!r}") from exc
    info.max_context = _context_of(listed, root, headers)
    return info


def _context_of(listed: list[Any], root: str, headers: dict[str, str]) -> int | None:
    """A sequence's context: vLLM's ``max_model_len``; llama-server's per-slot ``n_ctx``."""
    for entry in listed:
        if isinstance(entry, dict) and isinstance(entry.get("max_model_len"), int):
            return int(entry["max_model_len"])
    try:  # llama-server: /props at the server root (the API root's parent)
        props = httpx.get(root.rsplit("/v1", 1)[0] + "/props", headers=headers, timeout=2.0)
        n_ctx = msgspec.json.decode(props.content)["default_generation_settings"]["n_ctx"]
        return int(n_ctx)
    except (httpx.HTTPError, msgspec.DecodeError, KeyError, TypeError, ValueError):
        return None
