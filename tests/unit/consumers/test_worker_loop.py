"""The worker loop without Kafka: a failing model answers every request it held."""

from __future__ import annotations

from consumers.config import WorkerConfig
from consumers.engine import GenerationInput, load_runner
from consumers.outbox import Job
from consumers.worker import InferenceWorker
from schemas import InferenceRequest, ReplyAddress, decode_reply


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
