"""The running batch, scheduled: requests wait (earliest deadline first, by token budget),
join between decode steps, and leave finished, expired or failed. No Kafka here: the
worker loop hands requests in and turns the typed outcomes into answers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from kinfer.consumers import metrics
from kinfer.consumers.batching.adaptive import BatchPolicy, FixedBatching
from kinfer.consumers.batching.fair import DEFAULT_LOWER_SHARE, DEFAULT_QUANTUM
from kinfer.consumers.batching.waiting import WaitingQueue
from kinfer.consumers.engine import GenerationInput, GenerationOutput, ModelRunner
from kinfer.consumers.engine.runner import GenerationError, RankGroupLost, TextDelta
from kinfer.consumers.outbox import Job
from kinfer.schemas import ErrorCode

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Finished:
    job: Job
    output: GenerationOutput
    queue_ms: float
    """Creation (by the client) to the start of compute."""
    compute_ms: float
    """Start of compute (joining the batch, prefill included) to the end of its last step."""
    batch_size: int
    started_ms: float = 0.0
    """When compute started, on the clock of ``tick``'s ``now_ms``."""


@dataclass(frozen=True)
class Expired:
    job: Job
    message: str
    """Where the deadline passed, for the ``deadline_exceeded`` answer."""


@dataclass(frozen=True)
class Failed:
    job: Job
    message: str
    """The model's failure, for the error answer."""
    code: ErrorCode = ErrorCode.INTERNAL
    """``internal`` for a model that broke; an engine server's refusal or absence says its own."""


@dataclass(frozen=True)
class Cancelled:
    job: Job
    made: GenerationOutput
    """What it generated before it was stopped (nothing when it had not joined the batch)."""
    where: str
    """``dispatched`` (it had not joined the batch) or ``decoding``."""


Outcome = Finished | Expired | Failed | Cancelled


class BatchScheduler:
    def __init__(
        self,
        runner: ModelRunner,
        *,
        max_batch_tokens: int,
        max_batch_requests: int,
        max_wait_ms: int,
        on_text: Callable[[Job, TextDelta], None] | None = None,
        monotonic_ms: Callable[[], float] = lambda: time.monotonic() * 1000,
        policy: BatchPolicy | None = None,
        quantum: float = DEFAULT_QUANTUM,
        lower_share: float = DEFAULT_LOWER_SHARE,
        fair: bool = True,
    ) -> None:
        self.runner = runner
        self.policy: BatchPolicy = policy or FixedBatching()
        """Sets the wait and the budget from the traffic, within the configured ones (caps)."""
        self._wait_cap, self._token_cap = max_wait_ms, max_batch_tokens
        # ``now_ms`` is read once per tick, before the join's prefill and the step: a
        # request's compute ends that much later, measured on this clock.
        self.monotonic_ms = monotonic_ms
        self._tick = (0, 0.0)
        """(now_ms, monotonic_ms) when the current tick began."""
        self.on_text = on_text
        self.running = runner.batch()
        self.waiting: WaitingQueue[Job] = WaitingQueue(
            max_tokens=max_batch_tokens,
            max_rows=max_batch_requests,
            max_wait_ms=max_wait_ms,
            quantum=quantum,
            lower_share=lower_share,
        )
        self.fair = fair
        """False: every request in one queue (tenants and bands ignored)."""
        self._started_ms: dict[str, int] = {}
        self.recent_queue_ms = 0
        """Longest wait for a batch slot since the pool membership last read it."""

    def __len__(self) -> int:
        """Requests decoding now."""
        return len(self.running)

    @property
    def waiting_count(self) -> int:
        return len(self.waiting)

    def add(self, job: Job, now_ms: int) -> None:
        self.policy.arrived(now_ms, job.tokens)
        self._apply_policy()
        request = job.request
        self.waiting.add(
            job,
            tokens=job.tokens,
            deadline_ms=request.deadline_ms,
            now_ms=now_ms,
            rows=request.sampling.n,  # a request for n choices decodes as n rows
            tenant=request.tenant if self.fair else "",
            band=job.band if self.fair else 0,
            weight=job.weight,
        )

    def _apply_policy(self) -> None:
        self.waiting.max_wait_ms = self.policy.wait_ms(self._wait_cap)
        self.waiting.max_tokens = self.policy.budget(self._token_cap)

    def jobs(self) -> list[Job]:
        return list(self.running.keys())

    def held(self) -> list[Job]:
        """Every request here: decoding and waiting."""
        return self.jobs() + self.waiting.items()

    def cancel(self, keys: set[str]) -> list[Outcome]:
        """Stop the requests with these keys before the next step: they leave the batch (or
        the queue) with what they made so far."""
        if not keys:
            return []
        outcomes: list[Outcome] = []
        made = {job.key: self.running.progress(job) for job in self.jobs() if job.key in keys}
        for job in self.running.remove(lambda job: job.key not in keys):
            self._started_ms.pop(job.request.request_id, None)
            outcomes.append(Cancelled(job, made.get(job.key) or nothing(job), "decoding"))
        for job in self.waiting.remove(lambda job: job.key not in keys):
            outcomes.append(Cancelled(job, nothing(job), "dispatched"))
        return outcomes

    def tick(self, now_ms: int) -> list[Outcome]:
        """Expire what waited too long, let waiting requests join, decode one step."""
        self._tick = (now_ms, self.monotonic_ms())
        outcomes: list[Outcome] = [
            Expired(job, f"deadline passed after {now_ms - job.consumed_ms} ms waiting for a batch slot")
            for job in self.waiting.expired(now_ms)
        ]
        self._apply_policy()
        outcomes += self._join(now_ms)
        if len(self.running):
            outcomes += self.step(now_ms)
        return outcomes

    def step(self, now_ms: int) -> list[Outcome]:
        """One decode step of the running batch; sequences past their deadline leave first."""
        outcomes: list[Outcome] = self._drop_expired(now_ms)
        if not len(self.running):
            return outcomes
        jobs = self.jobs()  # before the step: a failing step may have let go of them
        if self._tick[0] != now_ms:  # stepped outside a tick (the drain)
            self._tick = (now_ms, self.monotonic_ms())
        started = time.monotonic()
        try:
            finished = self.running.step(self.on_text)
        except RankGroupLost:
            raise  # not these requests' fault: the worker exits and they are served elsewhere
        except Exception as exc:
            log.exception("worker.model_failed", stage="decode", size=len(jobs))
            self.running = self.runner.batch()
            return outcomes + self._failed(jobs, exc)
        took = time.monotonic() - started
        metrics.COMPUTE_SECONDS.observe(took)
        self.policy.stepped(took * 1000)
        size = len(self.running) + len(finished)
        ended_ms = now_ms + (self.monotonic_ms() - self._tick[1])
        for job, output in finished:
            began = self._started_ms.pop(job.request.request_id, now_ms)
            if isinstance(output, GenerationError):
                outcomes.append(Failed(job, output.message, output.code))
                continue
            created = job.request.created_ms
            queue_ms = float(max(0, began - created)) if created else 0.0
            outcomes.append(Finished(job, output, queue_ms, ended_ms - began, size, float(began)))
            self.policy.finished(ended_ms - began)
        return outcomes

    def remove(self, keep: Callable[[Job], bool]) -> list[Job]:
        """Drop running and waiting requests ``keep`` refuses (their partitions moved away)."""
        dropped = self.running.remove(keep) + self.waiting.remove(keep)
        for job in dropped:
            self._started_ms.pop(job.request.request_id, None)
        return dropped

    @property
    def max_wait_ms(self) -> int:
        """How long an idle engine holds requests back to fill its first batch; the tuner may
        change it at run time."""
        return self._wait_cap

    @max_wait_ms.setter
    def max_wait_ms(self, value: int) -> None:
        self._wait_cap = max(0, value)
        self._apply_policy()

    def wait_ms(self, now_ms: int) -> float:
        """How long the loop may block waiting for more requests before the batch must start."""
        return self.waiting.wait_ms(now_ms)

    def oldest_wait_ms(self, now_ms: int) -> int:
        return self.waiting.oldest_wait_ms(now_ms)

    def _join(self, now_ms: int) -> list[Outcome]:
        budget_used = sum(job.tokens for job in self.jobs())
        jobs = self.waiting.take(now_ms, rows=len(self.running), tokens=budget_used)
        if not jobs:
            return []
        for job in jobs:
            self._started_ms[job.request.request_id] = now_ms
            self.recent_queue_ms = max(self.recent_queue_ms, now_ms - job.consumed_ms)
            waited_s = max(0, now_ms - job.consumed_ms) / 1000
            metrics.QUEUE_WAIT_SECONDS.labels(str(job.band), job.request.tenant).observe(waited_s)
            metrics.QUEUE_SECONDS.observe(max(0, now_ms - (job.request.created_ms or now_ms)) / 1000)
        metrics.BATCH_SIZE.observe(len(self.running) + len(jobs))
        metrics.BATCH_TOKENS.observe(budget_used + sum(j.tokens for j in jobs))
        inputs = [
            (job, GenerationInput(job.prompt, job.request.sampling, job.request.messages)) for job in jobs
        ]
        try:
            self.running.join(inputs)
            return []
        except RankGroupLost:
            raise
        except Exception as exc:
            log.exception("worker.model_failed", stage="prefill", size=len(jobs))
            if len(jobs) == 1:
                return self._failed(jobs, exc)
        # A failed join leaves the batch as it was: join them one by one, so a request
        # that breaks the model fails alone instead of failing its neighbours.
        outcomes: list[Outcome] = []
        for item in inputs:
            try:
                self.running.join([item])
            except RankGroupLost:
                raise
            except Exception as alone:
                log.exception("worker.model_failed", stage="prefill", size=1)
                outcomes += self._failed([item[0]], alone)
        return outcomes

    def _drop_expired(self, now_ms: int) -> list[Outcome]:
        """Sequences whose deadline passed mid-decode leave the batch: nobody waits for
        them any more, and their slots and compute go to requests that someone does."""

        def alive(job: Job) -> bool:
            return job.request.deadline_ms is None or job.request.deadline_ms > now_ms

        outcomes: list[Outcome] = []
        for job in self.running.remove(alive):
            self._started_ms.pop(job.request.request_id, None)
            waited = now_ms - job.consumed_ms
            message = f"deadline passed after {waited} ms in the batch, before the answer was complete"
            outcomes.append(Expired(job, message))
        return outcomes

    def _failed(self, jobs: list[Job], exc: Exception) -> list[Outcome]:
        for job in jobs:
            self._started_ms.pop(job.request.request_id, None)
        return [Failed(job, f"model {self.runner.name} failed: {exc}") for job in jobs]


def nothing(job: Job) -> GenerationOutput:
    """The output of a request stopped before it joined a batch: no tokens computed."""
    return GenerationOutput("", "stop", 0, 0)
