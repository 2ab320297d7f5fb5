"""What a worker asks its own model before serving: a warm-up run before a standby is
promoted, and the health check a drained worker runs before it may rejoin its group."""

from __future__ import annotations

import time

import structlog

from kinfer.consumers.engine import GenerationInput, ModelRunner
from kinfer.schemas import SamplingParams

log = structlog.get_logger(__name__)


def warm_up(runner: ModelRunner) -> None:
    """Run the model once so a promotion pays for no lazy allocation or kernel load."""
    started = time.monotonic()
    runner.generate([GenerationInput("warm up", SamplingParams(max_tokens=4))])
    log.info("worker.warm", seconds=round(time.monotonic() - started, 3))


def health_check(runner: ModelRunner) -> str:
    """Out of the group for its error rate: a self-test request. Empty when it passed (the
    worker rejoins); else why it failed (the worker stays out and says so)."""
    try:
        out = runner.generate([GenerationInput("kinfer self-test", SamplingParams(max_tokens=4))])
    except Exception as exc:  # noqa: BLE001 - any failure of the model is the finding
        why = f"self-test failed: {type(exc).__name__}: {str(exc)[:200]}"
    else:
        why = "" if out and out[0].completion_tokens > 0 else "self-test generated nothing"
    if why:
        log.warning("worker.health_check_failed", reason=why, action="staying out of the group")
    else:
        log.info("worker.health_check_passed", action="rejoining the group")
    return why
