"""The engine alone, in this process, under open-loop arrivals: what the pipeline is compared to.

``continuous`` drives the worker's own :class:`BatchScheduler` (the same batch policy: token
budget, row limit, earliest deadline first, joins between decode steps); ``static`` forms a
batch from what has arrived, runs it to completion, then forms the next (what a server without
iteration-level batching does). Arrivals are a Poisson process replayed in real time.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from kinfer.consumers.batching.adaptive import BatchPolicy
from kinfer.consumers.engine import GenerationInput, ModelRunner
from kinfer.consumers.outbox import Job
from kinfer.consumers.scheduler import BatchScheduler, Finished
from kinfer.schemas import InferenceRequest, ReplyAddress, SamplingParams


@dataclass(frozen=True)
class Arrival:
    at_s: float
    """Seconds after the start."""
    prompt: str
    sampling: SamplingParams
    kind: str
    """A label for grouping (e.g. short / long)."""


@dataclass(frozen=True)
class Done:
    kind: str
    latency_ms: float
    tokens: int
    finished_s: float


def poisson(rate: float, n: int, make: Callable[[int], tuple[str, SamplingParams, str]]) -> list[Arrival]:
    """``n`` arrivals with exponential gaps of mean 1/rate; ``make(i)`` gives prompt, sampling, kind."""
    rng, at, out = random.Random(7), 0.0, []
    for i in range(n):
        prompt, sampling, kind = make(i)
        out.append(Arrival(at, prompt, sampling, kind))
        at += rng.expovariate(rate)
    return out


def continuous(
    runner: ModelRunner,
    arrivals: list[Arrival],
    *,
    max_batch_requests: int = 32,
    max_batch_tokens: int = 4096,
    max_wait_ms: int = 0,
    policy: BatchPolicy | None = None,
) -> list[Done]:
    scheduler = BatchScheduler(
        runner,
        max_batch_tokens=max_batch_tokens,
        max_batch_requests=max_batch_requests,
        max_wait_ms=max_wait_ms,
        policy=policy,
    )
    began, pending, done = time.perf_counter(), list(arrivals), []
    kinds: dict[str, Arrival] = {}
    while pending or len(scheduler) or scheduler.waiting_count:
        elapsed = time.perf_counter() - began
        while pending and pending[0].at_s <= elapsed:
            arrival = pending.pop(0)
            job = _job(runner, arrival, len(kinds), began)
            kinds[job.request.request_id] = arrival
            scheduler.add(job, _ms(began, arrival.at_s))
        if not len(scheduler) and not scheduler.waiting_count:
            time.sleep(max(0.0, pending[0].at_s - elapsed))
            continue
        if not len(scheduler):  # an idle engine holding requests back: wait as the worker's poll does
            next_arrival = pending[0].at_s - elapsed if pending else float("inf")
            held = scheduler.wait_ms(_ms(began, elapsed)) / 1000
            if min(held, next_arrival) > 0:
                time.sleep(min(held, next_arrival))
                continue
        for outcome in scheduler.tick(_ms(began, time.perf_counter() - began)):
            assert isinstance(outcome, Finished), outcome
            arrival = kinds[outcome.job.request.request_id]
            done.append(_done(arrival, began, outcome.output.completion_tokens))
    return done


def static(runner: ModelRunner, arrivals: list[Arrival], *, max_batch_requests: int = 32) -> list[Done]:
    began, pending, done = time.perf_counter(), list(arrivals), []
    waiting: list[Arrival] = []
    while pending or waiting:
        elapsed = time.perf_counter() - began
        while pending and pending[0].at_s <= elapsed:
            waiting.append(pending.pop(0))
        if not waiting:
            time.sleep(max(0.0, pending[0].at_s - elapsed))
            continue
        batch, waiting = waiting[:max_batch_requests], waiting[max_batch_requests:]
        outputs = runner.generate([GenerationInput(a.prompt, a.sampling) for a in batch])
        done += [_done(a, began, o.completion_tokens) for a, o in zip(batch, outputs, strict=True)]
    return done


def _job(runner: ModelRunner, arrival: Arrival, i: int, began: float) -> Job:
    request = InferenceRequest(
        request_id=f"engine-{i}",
        tenant="bench",
        prompt=arrival.prompt,
        reply_to=ReplyAddress("bench.replies", 0),
        sampling=arrival.sampling,
        created_ms=_ms(began, arrival.at_s),
    )
    tokens = runner.count_tokens(arrival.prompt) + arrival.sampling.max_tokens
    return Job(request, tokens, ("bench.dispatch", 0), i, _ms(began, arrival.at_s), arrival.prompt)


def _done(arrival: Arrival, began: float, tokens: int) -> Done:
    now = time.perf_counter() - began
    return Done(arrival.kind, (now - arrival.at_s) * 1000, tokens, now)


def _ms(began: float, at_s: float) -> int:
    return int((began + at_s) * 1000)
