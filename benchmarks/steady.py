"""A steady open-loop load with faults injected at set times, and when its answers came:
what the gray-failure tests assert on and `benchmarks/gray_failures.py` measures."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from kinfer.producers import AsyncClient, ClientConfig, Unavailable
from kinfer.schemas import SamplingParams
from kinfer.streams.routing.regions import DEFAULT_WEIGHTS
from kinfer.streams.routing.ring import HashRing

Fault = tuple[Callable[[], None], Callable[[], None]]
"""How a part goes away, and how it comes back."""


def pause(pid: int | None) -> Fault:
    """SIGSTOP and SIGCONT of a process: hung, not dead (its sockets stay open)."""
    assert pid is not None, "the process to hang is not running"
    return (lambda: os.kill(pid, signal.SIGSTOP)), (lambda: os.kill(pid, signal.SIGCONT))


@dataclass(frozen=True)
class SteadyRun:
    """When each answer of a steady load came, in seconds from its start (sorted)."""

    done: list[float]
    waits: list[float]
    """Each request's time from sent to answered."""
    unavailable: int
    """Answered ``unavailable`` (a terminal answer that tells the client to retry)."""
    duplicates: int
    """Second answers the client saw (and dropped) for one request."""

    def during(self, start_s: float, end_s: float) -> int:
        return sum(start_s <= t <= end_s for t in self.done)

    def longest_gap(self, start_s: float, end_s: float) -> float:
        """The longest time without an answer after one that came in [start_s, end_s]."""
        gaps = [b - a for a, b in itertools.pairwise(self.done) if start_s <= a <= end_s]
        return max(gaps, default=end_s - start_s)

    def summary(self, start_s: float, end_s: float) -> str:
        return (
            f"{self.during(start_s + 1, end_s)} answers in [{start_s + 1:.0f}, {end_s:.0f}] s,"
            f" longest gap {self.longest_gap(start_s + 1, end_s):.2f} s,"
            f" slowest answer {max(self.waits):.1f} s after its request,"
            f" {self.unavailable} answered unavailable"
        )


def steady_load(
    config: ClientConfig,
    rate: float,
    seconds: float,
    faults: dict[float, Callable[[], None]],
    id_prefix: str,
) -> SteadyRun:
    """``rate`` requests a second for ``seconds`` (ids ``<id_prefix><i>``, sampled so never a
    cache hit, from 16 users so every dispatch partition has some), each fault called once its
    time has come; returns once every call is answered (``unavailable`` answers are counted,
    other errors raised). The users are us-west's by the default ring, the region the suite's
    workers serve: admission routes by the ring whenever it sees no live heartbeat (before its
    first look, or after the workers could not beat), and another region has no worker here."""
    total = int(seconds * rate)
    ring = HashRing(DEFAULT_WEIGHTS)
    users = [u for u in (f"user-{i}" for i in range(1000)) if ring.node(u) == "us-west"][:16]
    due = sorted(faults.items())

    async def scenario() -> SteadyRun:
        async with AsyncClient(config) as client:
            done: list[float] = []
            waits: list[float] = []
            unavailable: list[str] = []
            t0 = time.monotonic()

            async def one(i: int) -> None:
                sampling = SamplingParams(max_tokens=4, temperature=0.7)
                sent = time.monotonic()
                try:
                    await client.generate(
                        f"steady {i}", sampling=sampling, request_id=f"{id_prefix}{i}", user=users[i % 16]
                    )
                except Unavailable as exc:
                    unavailable.append(exc.request_id or "")
                done.append(time.monotonic() - t0)
                waits.append(time.monotonic() - sent)

            tasks = []
            for i in range(total):
                while due and i >= due[0][0] * rate:
                    due.pop(0)[1]()
                tasks.append(asyncio.create_task(one(i)))
                await asyncio.sleep(max(0.0, t0 + (i + 1) / rate - time.monotonic()))
            for _, fault in due:
                fault()
            await asyncio.gather(*tasks)
            return SteadyRun(sorted(done), waits, len(unavailable), client.router.stats.duplicate_answers)

    return asyncio.run(scenario())
