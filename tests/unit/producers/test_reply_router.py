"""How the client sorts what arrives on its reply partition (no broker: records are fed in)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from kinfer.producers.errors import ClientClosed
from kinfer.producers.replies import ReplyRouter
from kinfer.schemas import ErrorCode, ErrorReply, InferenceResult, TokenChunk, Usage, encode
from kinfer.schemas.kafka_client import KafkaConnection
from kinfer.schemas.signing import REPLY_SIGNATURE, reply_key, sign_reply


def result(rid: str, text: str = "ok") -> bytes:
    return encode(
        InferenceResult(request_id=rid, text=text, finish_reason="stop", usage=Usage(1, 1), model="m")
    )


def chunk(rid: str, index: int) -> bytes:
    return encode(TokenChunk(request_id=rid, index=index, text=str(index)))


@pytest.fixture
async def router() -> AsyncIterator[ReplyRouter]:
    # Never started: no partition is read. The consumer is built but never polled.
    r = ReplyRouter(KafkaConnection(bootstrap_servers="127.0.0.1:1"), "t.replies", 0)
    r._loop = asyncio.get_running_loop()
    yield r
    with contextlib.suppress(RuntimeError):  # already closed by the test
        r.close()


async def settle() -> None:
    """Let call_soon_threadsafe callbacks run."""
    for _ in range(3):
        await asyncio.sleep(0)


async def test_an_answer_resolves_its_call_once_and_a_repeat_is_counted(router: ReplyRouter) -> None:
    future = router.expect("a")
    router._route(result("a", "first"))
    router._route(result("a", "again"))
    await settle()
    reply = future.result()
    assert isinstance(reply, InferenceResult) and reply.text == "first"
    assert (router.stats.delivered, router.stats.duplicate_answers, router.stats.unknown) == (1, 1, 0)


async def test_unknown_ids_chunks_without_a_stream_and_garbage_are_dropped(router: ReplyRouter) -> None:
    router._route(result("nobody-waits"))
    router._route(chunk("nobody-streams", 0))
    router._route(b"\xff not a reply")
    await settle()
    assert (router.stats.unknown, router.stats.undecodable, router.stats.delivered) == (1, 1, 0)


async def test_a_stream_gets_chunks_in_order_without_repeats_then_its_answer(router: ReplyRouter) -> None:
    queue = router.expect_stream("s")
    for value in (chunk("s", 0), chunk("s", 1), chunk("s", 1), chunk("s", 2), result("s", "012")):
        router._route(value)
    router._route(chunk("s", 3))  # after the answer: the stream is over
    await settle()
    got = [queue.get_nowait() for _ in range(queue.qsize())]
    assert [r.index for r in got if isinstance(r, TokenChunk)] == [0, 1, 2]
    assert isinstance(got[-1], InferenceResult) and got[-1].text == "012"
    assert router.stats.duplicate_chunks == 1


async def test_a_forgotten_call_is_not_answered(router: ReplyRouter) -> None:
    future = router.expect("gone")
    router.forget("gone")
    router._route(result("gone"))
    await settle()
    assert not future.done() and router.stats.unknown == 1


async def test_closing_fails_waiting_calls_and_ends_streams(router: ReplyRouter) -> None:
    future = router.expect("waits")
    queue = router.expect_stream("streams")
    router.close("shutting down")
    await settle()
    with pytest.raises(ClientClosed, match="shutting down before an answer came"):
        future.result()
    ended = queue.get_nowait()
    assert isinstance(ended, ErrorReply) and ended.code is ErrorCode.UNAVAILABLE


def signed(key: str, value: bytes) -> list[tuple[str, str | bytes | None]]:
    return [(REPLY_SIGNATURE, sign_reply(key, value))]


async def test_with_a_reply_key_only_the_pipelines_signed_answer_is_taken(router: ReplyRouter) -> None:
    key = reply_key("tenant-key", "a")
    future = router.expect("a", key)
    forged = result("a", "forged")
    router._route(forged)  # unsigned
    router._route(forged, signed(reply_key("another-key", "a"), forged))  # signed with the wrong key
    router._route(forged, signed(key, result("a", "other")))  # a real signature moved onto other bytes
    real = result("a", "real")
    router._route(real, signed(key, real))
    await settle()
    reply = future.result()
    assert isinstance(reply, InferenceResult) and reply.text == "real"
    assert (router.stats.forged, router.stats.delivered) == (3, 1)


async def test_signed_streams_drop_forged_chunks_and_unsigned_refusals_too(
    router: ReplyRouter,
) -> None:
    key = reply_key("tenant-key", "s")
    queue = router.expect_stream("s", key)
    router._route(chunk("s", 0))  # forged: unsigned
    good = chunk("s", 0)
    router._route(good, signed(key, good))
    await settle()
    assert [r.text for r in (queue.get_nowait() for _ in range(queue.qsize()))] == ["0"]
    # Admission never answers what it could not prove (it withholds the refusal), so an unsigned
    # ``unauthenticated`` refusal is a forgery meant to fail the call: dropped, counted.
    future = router.expect("u", reply_key("tenant-key", "u"))
    refusal = ErrorReply(request_id="u", code=ErrorCode.UNAUTHENTICATED, message="not proven")
    router._route(encode(refusal))
    await settle()
    assert not future.done() and router.stats.forged == 2
    router._route(encode(refusal), signed(reply_key("tenant-key", "u"), encode(refusal)))
    await settle()
    assert isinstance(future.result(), ErrorReply)
