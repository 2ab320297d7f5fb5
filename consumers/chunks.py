"""Token chunks of streaming requests, published as text becomes final.

They go out at once, outside the transactions: a ``read_committed`` client would
otherwise see them only with the final result. At least once; the index numbers a
request's chunks from 0 so the client drops a repeat.
"""

from __future__ import annotations

from collections.abc import Callable

from confluent_kafka import Producer

from kinfer.consumers.engine.runner import TextDelta
from kinfer.consumers.outbox import Job
from kinfer.schemas import TokenChunk, encode, headers
from kinfer.schemas.signing import REPLY_SIGNATURE, sign_reply


class ChunkPublisher:
    def __init__(self, producer: Callable[[], Producer]) -> None:
        self._producer = producer
        self._counts: dict[str, int] = {}

    def publish(self, job: Job, delta: TextDelta) -> None:
        request = job.request
        if not request.stream:
            return
        index = self._counts.get(request.request_id, 0)
        self._counts[request.request_id] = index + 1
        chunk = TokenChunk(
            request_id=request.request_id,
            index=index,
            text=delta.text,
            choice=delta.choice,
            logprobs=delta.logprobs,
            rate_limit=job.rate_limit if index == 0 else None,  # a stream's headers go out with it
        )
        producer = self._producer()
        value = encode(chunk)
        signature = sign_reply(job.reply_key, value) if job.reply_key else None
        producer.produce(
            request.reply_to.topic,
            value=value,
            key=request.request_id.encode(),
            partition=request.reply_to.partition,
            headers=headers.encode_headers({REPLY_SIGNATURE: signature}),
        )
        producer.poll(0)

    def forget(self, request_id: str) -> None:
        """The request is answered or dropped: a re-run here numbers its chunks from 0 again."""
        self._counts.pop(request_id, None)

    def numbered(self, request_id: str) -> int:
        """Chunks published so far for a request."""
        return self._counts.get(request_id, 0)
