"""The worker loop without Kafka: a failing model answers every request it held."""

from __future__ import annotations

from consumers.config import WorkerConfig
from consumers.engine import GenerationInput, load_runner
from consumers.outbox import Job
from consumers.worker import InferenceWorker
from schemas import InferenceRequest, ReplyAddress, SamplingParams, decode_reply


def test_a_failing_step_answers_internal_for_every_running_request() -> None:
    worker = InferenceWorker(WorkerConfig(bootstrap_servers="127.0.0.1:1"), load_runner("fail"))
    jobs = [
        Job(
            InferenceRequest(
                request_id=f"r{i}", tenant="t", prompt="p", reply_to=ReplyAddress("x.replies", 0)
            ),
            tokens=10,
            source=("x.dispatch.us-west", 0),
            offset=i,
            consumed_ms=0,
            prompt="p",
        )
        for i in range(3)
    ]
    worker.running.join([(job, GenerationInput(job.request.prompt, job.request.sampling)) for job in jobs])
    worker._step()
    replies = [decode_reply(r.value) for r in worker.outbox.records if r.topic == "x.replies"]
    assert sorted(r.request_id for r in replies) == ["r0", "r1", "r2"]
    assert {getattr(r, "code", None) for r in replies} == {"internal"}
    assert sorted(offset for _, offset in worker.outbox.answered) == [0, 1, 2]
    assert len(worker.running) == 0
    assert "consumer" not in worker.__dict__ and "producer" not in worker.__dict__  # never connected


def test_a_deadline_passing_mid_decode_ends_the_sequence_and_frees_its_slot() -> None:
    now = [1_000]
    worker = InferenceWorker(
        WorkerConfig(bootstrap_servers="127.0.0.1:1"), load_runner("kinfer-tiny"), clock_ms=lambda: now[0]
    )
    sampling = SamplingParams(max_tokens=50, stop=())

    def job(i: int, deadline_ms: int | None) -> Job:
        request = InferenceRequest(
            request_id=f"r{i}",
            tenant="t",
            prompt="tell me a long story",
            reply_to=ReplyAddress("x.replies", 0),
            sampling=sampling,
            deadline_ms=deadline_ms,
        )
        source = ("x.dispatch.us-west", 0)
        return Job(request, tokens=80, source=source, offset=i, consumed_ms=1_000, prompt=request.prompt)

    jobs = [job(0, deadline_ms=1_500), job(1, deadline_ms=None)]
    worker.running.join([(j, GenerationInput(j.request.prompt, j.request.sampling)) for j in jobs])
    worker._step()
    worker._step()
    assert len(worker.running) == 2 and not worker.outbox.answered  # both still decoding
    now[0] = 1_500  # r0's deadline
    worker._step()
    assert [j.request.request_id for j in worker._running_jobs()] == ["r1"]
    (reply,) = [decode_reply(r.value) for r in worker.outbox.records if r.topic == "x.replies"]
    assert reply.request_id == "r0" and getattr(reply, "code", None) == "deadline_exceeded"
    assert "before the answer was complete" in getattr(reply, "message", "")
    assert worker.outbox.answered == [(("x.dispatch.us-west", 0), 0)]


def test_a_request_dropped_on_rebalance_leaves_no_bookkeeping() -> None:
    """Re-run here later, a stream must number its chunks from 0 again."""
    worker = InferenceWorker(WorkerConfig(bootstrap_servers="127.0.0.1:1"), load_runner("echo"))
    request = InferenceRequest(
        request_id="r1", tenant="t", prompt="p", reply_to=ReplyAddress("x.replies", 0), stream=True
    )
    job = Job(request, tokens=10, source=("x.dispatch.us-west", 0), offset=0, consumed_ms=0, prompt="p")
    worker.running.join([(job, GenerationInput(request.prompt, request.sampling))])
    worker._started_ms["r1"], worker._chunk_counts["r1"] = 5, 3  # mid-stream
    worker._forget([("x.dispatch.us-west", 0)])
    assert len(worker.running) == 0 and "r1" not in worker._started_ms and "r1" not in worker._chunk_counts
