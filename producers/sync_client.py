"""The blocking client: the :class:`AsyncClient` on a private event-loop thread.

For scripts and threads that do not run asyncio. Every call blocks the calling
thread only; many threads may share one ``Client``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from types import TracebackType
from typing import Any, TypeVar

from kinfer.producers.chat import ChatMessage
from kinfer.producers.client import AsyncClient
from kinfer.producers.config import ClientConfig
from kinfer.schemas import CancelAck, InferenceRequest, InferenceResult, TokenChunk

T = TypeVar("T")


class Client:
    """``with Client(config) as client: print(client.generate("hi").text)``."""

    def __init__(self, config: ClientConfig | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kinfer-client-loop", daemon=True)
        self._thread.start()
        self._client = AsyncClient(config)
        try:
            self._call(self._client.start())
        except BaseException:
            self._stop_loop()
            raise

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    @property
    def config(self) -> ClientConfig:
        return self._client.config

    def generate(self, prompt: str, **kwargs: Any) -> InferenceResult:
        """See :meth:`AsyncClient.generate`."""
        return self._call(self._client.generate(prompt, **kwargs))

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> InferenceResult:
        """See :meth:`AsyncClient.chat`."""
        return self._call(self._client.chat(messages, **kwargs))

    def submit(self, request: InferenceRequest, *, timeout_s: float | None = None) -> InferenceResult:
        return self._call(self._client.submit(request, timeout_s=timeout_s))

    def cancel(self, request_id: str, **kwargs: Any) -> CancelAck:
        """See :meth:`AsyncClient.cancel`."""
        return self._call(self._client.cancel(request_id, **kwargs))

    def stream(self, prompt: str, **kwargs: Any) -> Iterator[TokenChunk | InferenceResult]:
        """See :meth:`AsyncClient.stream`: chunks, then the final result."""
        return self._iterate(self._client.stream(prompt, **kwargs))

    def chat_stream(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> Iterator[TokenChunk | InferenceResult]:
        """See :meth:`AsyncClient.chat_stream`."""
        return self._iterate(self._client.chat_stream(messages, **kwargs))

    def _iterate(self, items: AsyncIterator[T]) -> Iterator[T]:
        while True:
            try:
                yield self._call(anext(items))  # type: ignore[arg-type]
            except StopAsyncIteration:
                return

    def close(self) -> None:
        """Fail pending calls with ClientClosed, release Kafka resources, stop the loop."""
        if self._loop.is_closed():
            return
        try:
            self._call(self._client.close())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
