"""The batch scheduler without Kafka: typed outcomes for finished, expired and failed
requests, a fake clock, and one poison request failing alone."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from kinfer.consumers.engine import GenerationInput, ModelRunner, load_runner
from kinfer.consumers.engine.echo import EchoRunner, OneStepBatch
from kinfer.consumers.engine.runner import Ended, GenerationError, TextDelta
from kinfer.consumers.outbox import Job
from kinfer.consumers.scheduler import BatchScheduler, Cancelled, Expired, Failed, Finished
from kinfer.schemas import ErrorCode, InferenceRequest, ReplyAddress, SamplingParams


def job(
    i: int, *, prompt: str = "p", deadline_ms: int | None = None, max_tokens: int = 8, now: int = 0
) -> Job:
    request = InferenceRequest(
        request_id=f"r{i}",
        tenant="t",
        prompt=prompt,
        reply_to=ReplyAddress("x.replies", 0),
        sampling=SamplingParams(max_tokens=max_tokens, stop=()),
        deadline_ms=deadline_ms,
        created_ms=now,
    )
    return Job(request, tokens=80, source=("x.dispatch.us-west", 0), offset=i, consumed_ms=now, prompt=prompt)


def scheduler(runner: object, monotonic_ms: Callable[[], float] = lambda: 0.0, **kw: int) -> BatchScheduler:
    limits = {"max_batch_tokens": 4096, "max_batch_requests": 32, "max_wait_ms": 0, **kw}
    return BatchScheduler(runner, monotonic_ms=monotonic_ms, **limits)  # type: ignore[arg-type]


def test_a_failing_step_fails_every_running_request_and_leaves_an_empty_batch() -> None:
    s = scheduler(load_runner("fail"))
    for i in range(3):
        s.add(job(i), now_ms=0)
    outcomes = s.tick(0)
    assert sorted(o.job.request.request_id for o in outcomes) == ["r0", "r1", "r2"]
    assert all(isinstance(o, Failed) and "injected model failure" in o.message for o in outcomes)
    assert len(s) == 0


@pytest.fixture(params=["kinfer-tiny", "llama.cpp"])
def decoder(request: pytest.FixtureRequest) -> ModelRunner:
    """A runner that really decodes step by step: the torch engine, and llama.cpp (SmolLM2)."""
    if request.param == "llama.cpp":
        runner: ModelRunner = request.getfixturevalue("smollm2_llama")
        return runner
    return load_runner("kinfer-tiny")


def test_a_deadline_passing_mid_decode_ends_the_sequence_and_frees_its_slot(decoder: ModelRunner) -> None:
    s = scheduler(decoder)
    s.add(job(0, prompt="tell me a long story", deadline_ms=1_500, max_tokens=50, now=1_000), now_ms=1_000)
    s.add(job(1, prompt="tell me a long story", max_tokens=50, now=1_000), now_ms=1_000)
    assert s.tick(1_000) == [] and s.step(1_100) == []
    assert len(s) == 2  # both still decoding
    (expired,) = s.step(1_500)  # r0's deadline
    assert isinstance(expired, Expired) and expired.job.request.request_id == "r0"
    assert "before the answer was complete" in expired.message
    assert [j.request.request_id for j in s.jobs()] == ["r1"]


def test_a_request_that_waited_past_its_deadline_is_expired_without_compute() -> None:
    s = scheduler(load_runner("echo"), max_batch_requests=1)
    s.add(job(0, now=0), now_ms=0)
    s.add(job(1, deadline_ms=50, now=0), now_ms=0)
    outcomes = s.tick(100)
    assert [type(o) for o in outcomes] == [Expired, Finished]
    assert "waiting for a batch slot" in outcomes[0].message


def test_finished_requests_carry_their_timings() -> None:
    readings = iter([0.0, 7.5])  # the tick begins, then the step ends 7.5 ms later
    s = scheduler(load_runner("echo"), monotonic_ms=lambda: next(readings))
    s.add(job(0, prompt="abc", now=1_000), now_ms=1_000)
    (done,) = s.tick(1_250)
    assert isinstance(done, Finished) and done.output.text == "cba"
    assert done.queue_ms == 250.0 and done.batch_size == 1
    # Compute is the tick's prefill and step, though both ran after ``now_ms`` was read.
    assert done.started_ms == 1_250.0 and done.compute_ms == 7.5


class PoisonRunner(EchoRunner):
    """Fails any batch that holds the prompt "poison"."""

    def batch(self) -> OneStepBatch[object]:
        runner = self

        class Batch(OneStepBatch[object]):
            def join(self, items: Sequence[tuple[object, GenerationInput]]) -> None:
                if any(item.prompt == "poison" for _, item in items):
                    raise ValueError("poison")
                super().join(items)

        return Batch(runner)


def test_a_request_that_breaks_the_prefill_fails_alone() -> None:
    s = scheduler(PoisonRunner())
    for i, prompt in enumerate(["a", "poison", "b"]):
        s.add(job(i, prompt=prompt), now_ms=0)
    outcomes = {o.job.request.request_id: o for o in s.tick(0)}
    assert isinstance(outcomes["r1"], Failed)
    assert isinstance(outcomes["r0"], Finished) and isinstance(outcomes["r2"], Finished)


def test_requests_of_revoked_partitions_are_dropped_running_or_waiting(decoder: ModelRunner) -> None:
    s = scheduler(decoder, max_batch_requests=1)
    s.add(job(0, max_tokens=50), now_ms=0)
    s.add(job(1, max_tokens=50), now_ms=0)
    s.tick(0)
    assert len(s) == 1 and s.waiting_count == 1
    dropped = s.remove(lambda j: False)
    assert sorted(j.request.request_id for j in dropped) == ["r0", "r1"]
    assert len(s) == 0 and s.waiting_count == 0


class RefusingRunner(EchoRunner):
    """An engine server's answers: it refuses the prompt "refuse" and decodes the rest."""

    def batch(self) -> OneStepBatch[object]:
        runner = self

        class Batch(OneStepBatch[object]):
            def step(
                self, on_text: Callable[[object, TextDelta], None] | None = None
            ) -> list[tuple[object, Ended]]:
                done = super().step(on_text)
                refused = GenerationError(ErrorCode.INVALID_REQUEST, "engine server refused it (HTTP 400)")
                return [(key, refused if key.prompt == "refuse" else out) for key, out in done]  # type: ignore[attr-defined]

        return Batch(runner)


def test_a_request_the_engine_refuses_fails_alone_with_the_engines_code() -> None:
    s = scheduler(RefusingRunner())
    for i, prompt in enumerate(["a", "refuse", "b"]):
        s.add(job(i, prompt=prompt), now_ms=0)
    outcomes = {o.job.request.request_id: o for o in s.tick(0)}
    refused = outcomes["r1"]
    assert isinstance(refused, Failed) and refused.code == ErrorCode.INVALID_REQUEST
    assert "HTTP 400" in refused.message
    assert isinstance(outcomes["r0"], Finished) and isinstance(outcomes["r2"], Finished)


def test_a_cancelled_request_leaves_before_the_next_step_with_what_it_made(decoder: ModelRunner) -> None:
    s = scheduler(decoder, max_batch_requests=1)
    s.add(job(0, prompt="tell me a long story", max_tokens=50), now_ms=0)
    s.add(job(1, prompt="tell me a long story", max_tokens=50), now_ms=0)  # waits: one row only
    assert s.tick(0) == [] and s.step(1) == [] and s.step(2) == []
    outcomes = s.cancel({s.jobs()[0].key, job(1).key, "4:none:of-these"})
    by_id = {o.job.request.request_id: o for o in outcomes}
    assert set(by_id) == {"r0", "r1"} and all(isinstance(o, Cancelled) for o in outcomes)
    decoding, waiting = by_id["r0"], by_id["r1"]
    assert isinstance(decoding, Cancelled) and isinstance(waiting, Cancelled)
    assert decoding.where == "decoding" and decoding.made.completion_tokens == 3  # one per step so far
    assert decoding.made.prompt_tokens > 0
    assert waiting.where == "dispatched" and waiting.made.completion_tokens == 0
    assert len(s) == 0 and s.waiting_count == 0
    assert s.tick(3) == []  # nothing left to step


def test_a_cancel_for_nothing_held_changes_nothing() -> None:
    s = scheduler(load_runner("echo"))
    s.add(job(0), now_ms=0)
    assert s.cancel(set()) == [] and s.cancel({"1:t:other"}) == []
    assert s.waiting_count == 1
