"""A tensor-parallel worker behind Kafka: the same answers, weights split, and a rank's
death costs no request and answers none twice."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable

import pytest

from kinfer.consumers.engine import GenerationInput, load_runner
from kinfer.infra.stack.process import free_port
from kinfer.producers import AsyncClient
from kinfer.schemas import SamplingParams
from tests.integration.conftest import (
    Pipeline,
    assert_answered_once,
    kill_mid_run,
    metric,
    wait_for,
)
from tests.processes import children

PROMPTS = [f"parallel {i}" for i in range(6)]


def ranks(pid: int) -> list[int]:
    """The ranks a worker ``pid`` started: its children run with ``--rank`` (a short-lived
    child such as the ``ldconfig`` a library import runs is not one)."""
    return [child for child, argv in children(pid).items() if "--rank" in argv]


def test_a_tensor_parallel_worker_answers_as_one_process_does(
    make_pipeline: Callable[[str], Pipeline], prefix: str
) -> None:
    pipeline = make_pipeline(prefix)
    port = free_port()
    pipeline.start("admission", "admission")
    worker = pipeline.start(
        "worker-tp2",
        "worker",
        "--tensor-parallel",
        "2",
        "--max-wait-ms",
        "10",
        env={"KINFER_METRICS_PORT": str(port)},
    )
    pipeline.wait_serving()
    assert len(ranks(worker.proc.pid)) == 1, "rank 0 started rank 1"
    sampling = SamplingParams(max_tokens=16)

    async def ask() -> list[str]:
        async with AsyncClient(pipeline.services.settings(prefix).client_config(timeout_s=60)) as client:
            results = await asyncio.gather(*(client.generate(p, sampling=sampling) for p in PROMPTS))
            return [r.text for r in results]

    one_process = load_runner("kinfer-tiny", device="cpu").generate(
        [GenerationInput(p, sampling) for p in PROMPTS]
    )
    assert asyncio.run(ask()) == [o.text for o in one_process]
    rank_bytes = [metric(port, "kinfer_worker_rank_parameter_bytes", rank=str(r)) for r in (0, 1)]
    whole = load_runner("kinfer-tiny", device="cpu").parameter_bytes()  # type: ignore[attr-defined]
    assert all(0 < b < whole for b in rank_bytes), (rank_bytes, whole)
    assert worker.stop() == 0, "SIGTERM drains rank 0, which stops rank 1: a clean exit"
    assert "ranks.stopped" in worker.tail(200), "rank 1 was told to stop (it shares rank 0's log)"


@pytest.mark.slow
def test_killing_a_non_kafka_rank_loses_nothing_and_answers_nothing_twice(
    make_pipeline: Callable[[str], Pipeline], prefix: str
) -> None:
    """A T=2 worker and a plain one share the region; rank 1 of the T=2 worker is SIGKILLed
    mid-run. Its group exits non-zero, and every one of 1,000 requests is answered once."""
    n = 1000
    pipeline = make_pipeline(prefix)
    pipeline.start("admission", "admission")
    parallel = pipeline.start("worker-tp2", "worker", "--tensor-parallel", "2", "--max-wait-ms", "10")
    pipeline.start("worker", "worker", "--max-wait-ms", "10")
    pipeline.wait_serving()
    # The plain worker may serve first: the kill must hit a group that serves too.
    wait_for(lambda: "worker.started" in parallel.tail(100), 120, "the parallel worker to serve")
    (rank1,) = ranks(parallel.proc.pid)
    config = pipeline.services.settings(prefix).client_config(timeout_s=240)
    done_at_kill = kill_mid_run(config, n, "p", lambda: os.kill(rank1, signal.SIGKILL))
    print(f"rank 1 killed with {done_at_kill} of {n} answered")
    assert_answered_once(pipeline.services.bootstrap, pipeline.names.replies, "p", n)
    wait_for(lambda: not parallel.alive(), 30, "the parallel worker's group to exit")
    assert parallel.proc.returncode not in (0, None), "a lost rank fails the whole group"
    tail = parallel.tail(200)
    assert "ranks.follower_died" in tail or "group failed" in tail, tail


def test_a_rank_lost_while_the_group_starts_stops_rank_0_at_once(
    make_pipeline: Callable[[str], Pipeline], prefix: str
) -> None:
    pipeline = make_pipeline(prefix)
    # Rendezvous would give up after 10 min: an exit well before that is the lost rank noticed.
    wait_long = {"KINFER_WORKER__COLLECTIVE_TIMEOUT_S": "600"}
    worker = pipeline.start("worker-tp2", "worker", "--tensor-parallel", "2", env=wait_long)
    wait_for(lambda: len(ranks(worker.proc.pid)) == 1, 60, "rank 1 to start")
    (rank1,) = ranks(worker.proc.pid)
    os.kill(rank1, signal.SIGKILL)
    wait_for(lambda: not worker.alive(), 120, "rank 0 to exit (not after the rendezvous timeout)")
    assert worker.proc.returncode == 70, worker.tail(40)
    assert "ranks.follower_died" in worker.tail(40)
