"""A newcomer's first minutes: `kinfer up` starts a whole working pipeline on the real
model, `kinfer submit` answers, `kinfer status` shows every part, `kinfer down` leaves
no process; and when nothing would answer, the client says so at once."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from kinfer.infra.stack import procfs
from kinfer.infra.stack.process import free_port
from kinfer.producers import AsyncClient
from kinfer.producers.readiness import NothingServing
from tests.conftest import MODELS, Services
from tests.docs_examples import example, run_python
from tests.integration.conftest import Pipeline, kinfer, wait_for


def stage_pids(state_dir: Path) -> dict[str, int]:
    return {p.stem: int(p.read_text()) for p in (state_dir / "stages").glob("*.pid")}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    found = procfs.stat(pid)
    return found is not None and not found.zombie


def no_raw_librdkafka_lines(*outputs: str) -> bool:
    return not any(line.startswith("%") for text in outputs for line in text.splitlines())


@pytest.mark.slow
def test_up_serves_smollm2_and_down_leaves_no_process(own_stack_env: dict[str, str]) -> None:
    gateway_port = free_port()
    env = {**own_stack_env, "KINFER_MODELS_DIR": str(MODELS), "KINFER_GATEWAY__PORT": str(gateway_port)}
    state = Path(env["KINFER_STATE_DIR"])

    services = kinfer("up", "--services-only", env=env)
    assert services.returncode == 0, services.stderr
    started = time.monotonic()
    nobody = kinfer("submit", "hello", env=env)
    assert nobody.returncode == 1 and time.monotonic() - started < 15
    assert "no admission worker is running" in nobody.stderr and "kinfer up" in nobody.stderr

    up = kinfer("up", env=env, timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "API key: sk-kinfer-dev-" in up.stdout
    pids = stage_pids(state)
    assert sorted(pids) == ["admission", "gateway", "worker"] and all(alive(p) for p in pids.values())

    started = time.monotonic()
    answer = kinfer("submit", "What is the capital of France?", env=env)
    assert answer.returncode == 0, answer.stderr
    assert "Paris" in answer.stdout and time.monotonic() - started < 30

    status = kinfer("status", env=env).stdout
    for stage in ("admission", "worker", "gateway"):
        assert re.search(rf"^{stage}\s+running\s+pid \d+, up", status, re.M), status
    assert re.search(r"^group\s+kinfer-admission\s+stable\s+members 1", status, re.M), status
    assert re.search(r"^group\s+kinfer-workers-us-west\s+stable\s+members 1", status, re.M), status
    assert re.search(r"^worker\s+us-west\s+\S+\s+active\s+model smollm2-135m-instruct", status, re.M), status
    assert "breakers  open: none" in status

    key = (state / "gateway" / "dev-api-key").read_text().strip()
    listed = httpx.get(
        f"http://127.0.0.1:{gateway_port}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=10
    ).json()
    assert [m["id"] for m in listed["data"]] == ["smollm2-135m-instruct"]
    assert "supervise.started" in kinfer("logs", "worker", "-n", "200", env=env).stdout
    assert no_raw_librdkafka_lines(up.stdout, up.stderr, answer.stderr, nobody.stderr)
    the_documented_examples_answer(env, gateway=f"http://127.0.0.1:{gateway_port}/v1", key=key)

    down = kinfer("down", env=env)
    assert "stopped: gateway, worker, admission, redis, kafka" in down.stdout
    assert not any(alive(p) for p in pids.values())
    assert kinfer("status", env=env).stdout.count("stopped") == 5


def the_documented_examples_answer(env: dict[str, str], gateway: str, key: str) -> None:
    """The first examples a newcomer copies (README, Getting started, the SDK guide), run as
    written against this `kinfer up`, with its ports and key put in for the documented ones.
    Each asks greedily (the SDK's default, `temperature=0` in the `openai` ones), so SmolLM2's
    answer names Paris every time."""
    kafka = f"127.0.0.1:{env['KINFER_KAFKA_PORT']}"
    redis_url = f"redis://127.0.0.1:{env['KINFER_REDIS_PORT']}/0"
    openai_at = {"http://127.0.0.1:8000/v1": gateway, "sk-kinfer-dev-...": key}
    for page, name in (("README.md", "readme-openai"), ("docs/getting-started.md", "getting-started-openai")):
        assert "Paris" in run_python(example(page, name), openai_at), name
    assert "Paris" in run_python(example("README.md", "readme-sdk"), {"127.0.0.1:19092": kafka})
    quickstart = example("docs/guides/python-sdk.md", "sdk-quickstart")
    printed = run_python(quickstart, {"127.0.0.1:19092": kafka, "redis://127.0.0.1:16379/0": redis_url})
    assert "Paris" in printed and "RateLimitStatus(" in printed and "InferenceResult(" in printed, printed


def test_the_sdk_fails_fast_naming_the_stage_that_is_missing(
    make_pipeline: Callable[[str], Pipeline], services: Services, prefix: str
) -> None:
    config = services.settings(prefix).client_config(check_consumers=True)

    async def start() -> float:
        began = time.monotonic()
        async with AsyncClient(config):
            pass
        return time.monotonic() - began

    with pytest.raises(NothingServing, match="no admission worker"):
        asyncio.run(start())
    pipeline = make_pipeline(prefix)
    pipeline.start("admission", "admission")

    def only_the_worker_is_missing() -> bool:  # once admission has joined its group
        began = time.monotonic()
        try:
            asyncio.run(start())
        except NothingServing as exc:
            assert time.monotonic() - began < 5
            return "no inference worker" in exc.message and "kinfer worker" in exc.message
        raise AssertionError("nothing is missing, yet no worker was started")

    wait_for(only_the_worker_is_missing, 60, "admission to join its group", every_s=0.5)
    pipeline.start("worker", "worker", env={"KINFER_WORKER__MODEL": "echo"})
    pipeline.wait_serving()
    assert asyncio.run(start()) < 5
