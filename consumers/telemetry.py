"""Throughput and device use of a worker, sampled every few seconds into gauges."""

from __future__ import annotations

import math
import os
import time

import structlog

from kinfer.consumers import metrics

log = structlog.get_logger(__name__)


MAX_LATENCIES = 10_000
"""Answers kept per interval for its p99 (more in one interval are not needed for it)."""


def p99(values: list[float]) -> int:
    """The 99th percentile (nearest rank), 0 for none."""
    if not values:
        return 0
    ranked = sorted(values)
    return int(ranked[min(len(ranked) - 1, math.ceil(0.99 * len(ranked)) - 1)])


class DeviceSampler:
    def __init__(self, device: str, every_s: float = 5.0) -> None:
        self.device = device
        self.every_s = every_s
        self._wall = time.monotonic()
        self._cpu = time.process_time()
        self._pending_tokens = 0
        self._computing_s = 0.0
        self._waiting_peak = 0
        self.utilisation = 0.0
        """Model compute share of the last complete interval."""
        self.waiting_peak = 0
        """Most requests waiting for a batch at once in the last complete interval."""
        self._latencies_ms: list[float] = []
        self._answers = self._errors = 0
        self.answers = 0
        """Answers sent in the last complete interval."""
        self.error_ratio = 0.0
        """Share of them that were server errors."""
        self.p99_ms = 0
        """p99 end-to-end latency of the answers of the last complete interval (0: none)."""
        self._cores = os.cpu_count() or 1
        metrics.BATCH_MIN.set(1)

    def generated(self, tokens: int) -> None:
        self._pending_tokens += tokens

    def answered(self, latency_ms: float | None, *, server_error: bool) -> None:
        """A request answered (this long after it was created, when known)."""
        self._answers += 1
        self._errors += server_error
        if latency_ms is not None and len(self._latencies_ms) < MAX_LATENCIES:
            self._latencies_ms.append(latency_ms)

    def forget_errors(self) -> None:
        """The answers so far were judged (the worker was drained for them): the next interval's
        error ratio is of answers after that alone."""
        self.answers = self._answers = self._errors = 0
        self.error_ratio = 0.0

    def computed(self, seconds: float) -> None:
        """Time the model spent on a tick (join's prefill and a decode step)."""
        self._computing_s += seconds

    def maybe_sample(self, waiting: int = 0) -> None:
        metrics.WAITING.set(waiting)
        self._waiting_peak = max(self._waiting_peak, waiting)
        now = time.monotonic()
        elapsed = now - self._wall
        if elapsed < self.every_s:
            return
        cpu = time.process_time()
        metrics.TOKENS_PER_SECOND.set(self._pending_tokens / elapsed)
        # Share of the machine's cores this process kept busy (all threads, torch's included).
        metrics.CPU_UTILISATION.set((cpu - self._cpu) / elapsed / self._cores)
        self.utilisation = min(1.0, self._computing_s / elapsed)
        self.waiting_peak, self._waiting_peak = self._waiting_peak, 0
        self.p99_ms, self._latencies_ms = p99(self._latencies_ms), []
        self.answers, self.error_ratio = self._answers, self._errors / max(1, self._answers)
        self._answers = self._errors = 0
        metrics.UTILISATION.labels(self.device).set(self.utilisation)
        self._wall, self._cpu, self._pending_tokens, self._computing_s = now, cpu, 0, 0.0
        if self.device.startswith("cuda"):
            self._sample_gpu()

    def _sample_gpu(self) -> None:
        import torch

        if not torch.cuda.is_available():
            return
        metrics.GPU_MEMORY_BYTES.set(torch.cuda.memory_allocated())
        try:
            metrics.GPU_UTILISATION.set(torch.cuda.utilization() / 100)
        except (RuntimeError, ModuleNotFoundError) as exc:  # needs NVML (nvidia-ml-py)
            log.debug("worker.gpu_utilisation_unavailable", error=str(exc))
