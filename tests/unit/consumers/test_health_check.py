"""A drained worker's self-test: it rejoins when its model answers, stays out saying why when
not. (Building a worker connects to nothing: its Kafka clients are made on first use.)"""

from __future__ import annotations

from kinfer.consumers.config import WorkerConfig
from kinfer.consumers.engine import load_runner
from kinfer.consumers.self_test import health_check
from kinfer.consumers.worker import InferenceWorker


def test_a_model_that_answers_passes_and_one_that_fails_says_why() -> None:
    config = WorkerConfig()
    healthy = InferenceWorker(config, load_runner("echo"))
    assert health_check(healthy.runner) == ""
    broken = InferenceWorker(config, load_runner("fail"))
    assert health_check(broken.runner).startswith("self-test failed: RuntimeError: injected model failure")
    assert not healthy.clients.connected("consumer") and not broken.clients.connected("producer")
