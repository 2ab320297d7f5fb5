"""The worker's refusal paths and delivery guarantees on the real broker."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from confluent_kafka import Producer

from benchmarks.steady import steady_load
from kinfer.consumers.engine import GenerationInput, load_runner
from kinfer.infra.stack.process import free_port
from kinfer.producers import AsyncClient, DeadlineExceeded, InvalidRequest
from kinfer.schemas import (
    ChatMessage,
    ErrorCode,
    ErrorReply,
    InferenceRequest,
    SamplingParams,
    decode_event,
    decode_reply,
    encode,
    headers,
)
from kinfer.schemas.request_keys import answered_key, request_key
from tests.integration.conftest import (
    Pipeline,
    assert_answered_once,
    kill_mid_run,
    kinfer,
    read_all,
    scrape,
    serving,
    until,
    wait_for_members,
)
from tests.model_dirs import make_model_dir


def test_cli_submit_prints_the_answer(make_pipeline: Callable[[str], Pipeline], prefix: str) -> None:
    """A question is answered through the model's chat template; --raw continues the text."""
    pipeline = serving(make_pipeline, prefix)
    env = {**os.environ, **pipeline.services.env(prefix)}
    runner = load_runner("kinfer-tiny", device="cpu")
    sampling = SamplingParams(max_tokens=12)
    for flags, prompt in (
        ((), runner.render_chat([ChatMessage("user", "hello")])),
        (("--raw",), "hello"),
    ):
        result = kinfer("submit", "hello", "--max-tokens", "12", *flags, env=env, timeout=120)
        assert result.returncode == 0, result.stderr
        expected = runner.generate([GenerationInput(prompt, sampling)])[0].text
        assert result.stdout.rstrip("\n") == expected


def test_refusals_reach_the_client_as_typed_errors(
    make_pipeline: Callable[[str], Pipeline], prefix: str
) -> None:
    pipeline = serving(make_pipeline, prefix)

    async def scenario() -> None:
        async with AsyncClient(pipeline.services.settings(prefix).client_config(timeout_s=60)) as client:
            # Over kinfer-tiny's 1024-token context: only the worker knows the model's limit.
            with pytest.raises(InvalidRequest, match="exceeds the model's context of 1024"):
                await client.generate("x" * 1000, sampling=SamplingParams(max_tokens=100))
            # Over the wire limit: refused before it reaches Kafka.
            with pytest.raises(InvalidRequest, match="limit is"):
                await client.generate("x" * 300_000)
            # A deadline already past on arrival: admission answers deadline_exceeded.
            late = client.build_request("late", timeout_s=0.001)
            time.sleep(0.01)
            with pytest.raises(DeadlineExceeded, match="before admission") as info:
                await client.submit(late, timeout_s=30)
            assert info.value.code is ErrorCode.DEADLINE_EXCEEDED and not info.value.retriable

    asyncio.run(scenario())


def test_worker_answers_expired_dispatch_without_compute(
    make_pipeline: Callable[[str], Pipeline], prefix: str
) -> None:
    """A request that expires between admission and the worker is answered, not run."""
    pipeline = serving(make_pipeline, prefix)

    async def scenario() -> ErrorReply:
        async with AsyncClient(pipeline.services.settings(prefix).client_config()) as client:
            req = client.build_request("slow queue", timeout_s=0.001)
            waiting = client.router.expect(req.request_id)
            raw = Producer({"bootstrap.servers": pipeline.services.bootstrap})
            raw.produce(
                pipeline.names.dispatch("us-west"),
                value=encode(req),
                partition=0,
                headers=[(headers.REQUEST_ID, req.request_id.encode())],
            )
            raw.flush(10)
            reply = await asyncio.wait_for(waiting, 60)
            assert isinstance(reply, ErrorReply)
            return reply

    reply = asyncio.run(scenario())
    assert reply.code is ErrorCode.DEADLINE_EXCEEDED and "before compute" in reply.message
    events = [decode_event(v or b"") for v, _ in read_all(pipeline.services.bootstrap, pipeline.names.events)]
    assert any(e.request_id == reply.request_id and e.status == "deadline_exceeded" for e in events)


def test_a_request_dispatched_twice_is_answered_once(
    make_pipeline: Callable[[str], Pipeline], prefix: str
) -> None:
    """Admission is at-least-once, so a request may be dispatched twice: a copy is skipped
    while the original is in flight, and after its answer on any partition (any worker)."""
    pipeline = serving(make_pipeline, prefix, workers=2)
    raw = Producer({"bootstrap.servers": pipeline.services.bootstrap})
    store = redis.Redis.from_url(pipeline.services.redis_url)

    def dispatch(request: InferenceRequest, partition: int) -> None:
        raw.produce(
            pipeline.names.dispatch("us-west"),
            value=encode(request),
            partition=partition,
            headers=[(headers.REQUEST_ID, request.request_id.encode())],
        )

    async def scenario() -> str:
        async with AsyncClient(pipeline.services.settings(prefix).client_config()) as client:
            twice = client.build_request("twice", timeout_s=60)
            answered = client.router.expect(twice.request_id)
            dispatch(twice, 0)
            dispatch(twice, 0)  # right behind it: the first is still in flight
            raw.flush(10)
            await asyncio.wait_for(answered, 60)
            mark = answered_key(prefix, request_key(twice.tenant, twice.request_id))
            await until(lambda: bool(store.exists(mark)), 10, "the answer to be remembered in Redis")
            for partition in range(3):  # again, on every partition: both workers see a copy
                dispatch(twice, partition)
            # A marker behind each copy: once it is answered, the copy before it was handled.
            markers = [client.build_request(f"marker {p}", timeout_s=60) for p in range(3)]
            waits = [client.router.expect(m.request_id) for m in markers]
            for partition, marker in enumerate(markers):
                dispatch(marker, partition)
            raw.flush(10)
            await asyncio.wait_for(asyncio.gather(*waits), 60)
            return twice.request_id

    rid = asyncio.run(scenario())
    replies = [
        decode_reply(v or b"") for v, _ in read_all(pipeline.services.bootstrap, pipeline.names.replies)
    ]
    assert [r.request_id for r in replies].count(rid) == 1


TINY_EOS = 257


def test_answers_committed_ahead_of_an_open_request_are_not_answered_again_by_the_next_owner(
    make_pipeline: Callable[[str], Pipeline], prefix: str
) -> None:
    """Answers commit out of order: the partition's offset stops at the first open request, and
    those answered after it are named in the same transaction (the offset's metadata). A worker
    killed after that commit but before it told Redis (here: its marks deleted) leaves its
    successor nothing but that to go by: they must not be answered twice (an official CI run saw
    3 of 500 twice, through the llama-server engine, before the metadata)."""
    pipeline = make_pipeline(prefix)
    pipeline.start("admission", "admission")
    room = ["--max-wait-ms", "10", "--max-batch-tokens", "16384"]  # the long one leaves room
    first = pipeline.start("worker0", "worker", *room)
    pipeline.wait_serving()
    raw = Producer({"bootstrap.servers": pipeline.services.bootstrap})
    store = redis.Redis.from_url(pipeline.services.redis_url)
    long_sampling = SamplingParams(max_tokens=1000, n=4, temperature=0.7, logit_bias={TINY_EOS: -100})

    def dispatch(request: InferenceRequest) -> None:  # all on one partition, in this order
        raw.produce(
            pipeline.names.dispatch("us-west"),
            value=encode(request),
            partition=0,
            headers=[(headers.REQUEST_ID, request.request_id.encode())],
        )

    async def scenario() -> None:
        async with AsyncClient(pipeline.services.settings(prefix).client_config(timeout_s=120)) as client:
            long = client.build_request("a long story", sampling=long_sampling, request_id="long")
            shorts = [
                client.build_request(f"short {i}", sampling=SamplingParams(max_tokens=1), request_id=f"a{i}")
                for i in range(20)
            ]
            long_answer = client.router.expect(long.request_id)
            short_answers = [client.router.expect(s.request_id) for s in shorts]
            for request in (long, *shorts):
                dispatch(request)
            raw.flush(10)
            await asyncio.wait_for(asyncio.gather(*short_answers), 60)  # committed, ahead of long
            first.kill()
            assert not long_answer.done(), "the long request (4 x 1000 tokens) is still decoding"
            store.delete(*(answered_key(prefix, request_key(s.tenant, s.request_id)) for s in shorts))
            pipeline.start("worker1", "worker", *room)
            await asyncio.wait_for(long_answer, 120)

    asyncio.run(scenario())
    assert_answered_once(pipeline.services.bootstrap, pipeline.names.replies, "a", 20)


@pytest.mark.slow
def test_sigkill_mid_run_loses_nothing_and_duplicates_nothing(
    make_pipeline: Callable[[str], Pipeline], prefix: str
) -> None:
    """Two workers, 2000 requests, one SIGKILLed mid-run: each answered exactly once."""
    n = 2000
    pipeline = serving(make_pipeline, prefix, workers=2)
    config = pipeline.services.settings(prefix).client_config(timeout_s=180)
    kill_mid_run(config, n, "k", pipeline.stages[1].kill)
    assert_answered_once(pipeline.services.bootstrap, pipeline.names.replies, "k", n)


@pytest.mark.slow
def test_a_hung_worker_loses_its_partitions_is_fenced_and_rejoins(
    make_pipeline: Callable[[str], Pipeline], prefix: str
) -> None:
    """One of two workers SIGSTOPped for 15 s under 20 requests/s (its session and its open
    transaction, 10 s each, time out meanwhile), then resumed: its partitions move to the live
    worker, whatever it held is answered there, its late transaction is refused (no answer
    twice), and it rejoins the group."""
    rate, hung_at, hung_s = 20.0, 5.0, 15.0
    pipeline = serving(make_pipeline, prefix, workers=2)
    hung = pipeline.stages[1]
    group = pipeline.services.settings(prefix).worker_config().consumer_group
    dispatch = pipeline.names.dispatch("us-west")
    wait_for_members(pipeline, group, dispatch, 2)
    config = pipeline.services.settings(prefix).client_config(timeout_s=120)
    seconds = hung_at + hung_s + 8
    run = steady_load(config, rate, seconds, {hung_at: hung.pause, hung_at + hung_s: hung.resume}, "h")
    print(f"worker hung {hung_s:.0f} s: {run.summary(hung_at, hung_at + hung_s)}")
    assert run.duplicates == 0
    assert_answered_once(pipeline.services.bootstrap, pipeline.names.replies, "h", int(seconds * rate))
    assert run.unavailable == 0, "a hung worker's requests wait for the next owner, never refused"
    wait_for_members(pipeline, group, dispatch, 2)  # the resumed worker owns partitions again
    assert hung.alive(), hung.tail(30)
    assert pipeline.stages[2].alive()


def test_short_requests_do_not_wait_behind_a_long_one(
    make_pipeline: Callable[[str], Pipeline], prefix: str
) -> None:
    pipeline = serving(make_pipeline, prefix)

    async def scenario() -> tuple[float, list[float]]:
        async with AsyncClient(pipeline.services.settings(prefix).client_config(timeout_s=120)) as client:
            t0 = time.monotonic()

            async def timed(prompt: str, max_tokens: int) -> float:
                await client.generate(prompt, sampling=SamplingParams(max_tokens=max_tokens, stop=()))
                return time.monotonic() - t0

            long_task = asyncio.create_task(timed("a very long story", 900))
            await asyncio.sleep(0.3)  # the long one is decoding
            shorts = await asyncio.gather(*(timed(f"short {i}", 4) for i in range(8)))
            return await long_task, shorts

    long_done, shorts_done = asyncio.run(scenario())
    assert max(shorts_done) < long_done, (shorts_done, long_done)


def test_sigterm_finishes_running_work_and_leaves_cleanly(
    make_pipeline: Callable[[str], Pipeline], prefix: str
) -> None:
    pipeline = serving(make_pipeline, prefix, workers=2)
    leaving = pipeline.stages[1]

    async def scenario() -> int:
        async with AsyncClient(pipeline.services.settings(prefix).client_config(timeout_s=120)) as client:
            tasks = [
                asyncio.create_task(client.generate(f"term {i}", sampling=SamplingParams(max_tokens=6)))
                for i in range(400)
            ]
            while sum(t.done() for t in tasks) < 50:
                await asyncio.sleep(0.05)
            code = await asyncio.to_thread(leaving.stop, 60)
            results = await asyncio.gather(*tasks)
            assert len({r.request_id for r in results}) == 400
            assert client.router.stats.duplicate_answers == 0
            return code

    assert asyncio.run(scenario()) == 0
    assert "worker.stopped" in leaving.tail(50)


def test_worker_serves_a_local_hugging_face_directory(
    make_pipeline: Callable[[str], Pipeline], prefix: str, tmp_path: Path
) -> None:
    model_dir = make_model_dir(tmp_path / "tiny-llama")
    pipeline = make_pipeline(prefix)
    pipeline.start("admission", "admission")
    pipeline.start("worker", "worker", "--model", str(model_dir))
    pipeline.wait_serving()
    sampling = SamplingParams(max_tokens=10)

    async def scenario() -> list[str]:
        async with AsyncClient(pipeline.services.settings(prefix).client_config(timeout_s=60)) as client:
            results = await asyncio.gather(
                *(client.generate(p, sampling=sampling) for p in ("Kafka", "Workers"))
            )
            assert all(r.model == "tiny-llama" for r in results)
            return [r.text for r in results]

    runner = load_runner(str(model_dir), device="cpu")
    expected = [runner.generate([GenerationInput(p, sampling)])[0].text for p in ("Kafka", "Workers")]
    assert asyncio.run(scenario()) == expected


def test_utilisation_and_throughput_reach_the_workers_metrics(
    make_pipeline: Callable[[str], Pipeline], prefix: str
) -> None:
    """The gauges the tuning rules read are set while the worker runs (read from /metrics)."""
    pipeline = make_pipeline(prefix)
    pipeline.start("admission", "admission")
    port = free_port()
    env = {"KINFER_WORKER__TELEMETRY_INTERVAL_S": "0.5"}
    pipeline.start("worker", "worker", "--metrics-port", str(port), env=env)
    pipeline.wait_serving()

    def gauges() -> dict[str, float]:
        return {sample.name: sample.value for sample in scrape(port)}

    async def under_load() -> dict[str, float]:
        """The highest value of each gauge read while 64 sampled requests run."""
        highest: dict[str, float] = {}
        # A generous deadline: the gauges are the point, and this machine may be running other tests.
        async with AsyncClient(pipeline.services.settings(prefix).client_config(timeout_s=240)) as client:
            sampling = SamplingParams(max_tokens=256, temperature=0.7)
            work = asyncio.gather(*(client.generate(f"busy {i}", sampling=sampling) for i in range(64)))
            settled = 0.0
            while not work.done() or settled < 1.5:  # and two sampling intervals after the last answer
                for name, value in (await asyncio.to_thread(gauges)).items():
                    highest[name] = max(value, highest.get(name, value))
                await asyncio.sleep(0.2)
                settled += 0.2 if work.done() else 0.0
            await work
        return highest

    seen = asyncio.run(under_load())
    assert seen["kinfer_worker_cpu_utilisation"] > 0, seen
    assert seen["kinfer_worker_tokens_per_second"] > 0, seen
    assert seen["kinfer_worker_parameter_bytes"] > 0
