"""Batch parameters that follow the traffic: the design's adaptive batching. Pure; every
observation carries its time.

A worker's batch has two knobs: how long an idle engine holds a request back for company (the
wait) and how many tokens one batch may hold (the budget). Fixed, they are right for one load
only: a wait fills batches when requests come faster than a step, and only delays a lone
request when they do not; a budget sized for peak load is harmless when traffic is light but
must not cap a batch when it is heavy.

This policy measures the arrival rate (an exponentially weighted mean of the gaps between
arrivals) and the service time (of a decode step, and of a request from joining to finishing)
and sets:

- the wait: the expected gap to the next arrival when at least two more are expected within a
  decode step (requests arriving then would otherwise wait for the step anyway, then pay their
  own prefills while the batch waits), else 0; never above the configured wait, the cap;
- the budget: by Little's law, the tokens of the requests expected in service at once (arrival
  rate x service time x tokens per request), with 50 % headroom, between a floor and the
  configured budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

Policy = Literal["fixed", "adaptive"]


class BatchPolicy(Protocol):
    """What the scheduler asks before it lets waiting requests join, and tells after."""

    def arrived(self, now_ms: float, tokens: int) -> None: ...

    def stepped(self, step_ms: float) -> None: ...

    def finished(self, service_ms: float) -> None: ...

    def wait_ms(self, cap_ms: int) -> int:
        """How long an idle engine may hold requests back, at most ``cap_ms``."""
        ...

    def budget(self, cap_tokens: int) -> int:
        """Token budget of a batch, at most ``cap_tokens``."""
        ...


class FixedBatching:
    """Today's policy: the configured wait and budget, whatever the traffic."""

    def arrived(self, now_ms: float, tokens: int) -> None:
        pass

    def stepped(self, step_ms: float) -> None:
        pass

    def finished(self, service_ms: float) -> None:
        pass

    def wait_ms(self, cap_ms: int) -> int:
        return cap_ms

    def budget(self, cap_tokens: int) -> int:
        return cap_tokens


@dataclass
class Ewma:
    """An exponentially weighted mean; None until the first sample."""

    weight: float
    value: float | None = None

    def add(self, sample: float) -> None:
        self.value = sample if self.value is None else self.value + self.weight * (sample - self.value)


@dataclass
class AdaptiveBatching:
    """See the module docstring. ``weight``: how fast the means follow a change of load."""

    weight: float = 0.1
    min_budget: int = 512
    headroom: float = 1.5
    gap_ms: Ewma = field(init=False)
    step_ms: Ewma = field(init=False)
    service_ms: Ewma = field(init=False)
    tokens: Ewma = field(init=False)
    _last_arrival_ms: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.gap_ms, self.step_ms = Ewma(self.weight), Ewma(self.weight)
        self.service_ms, self.tokens = Ewma(self.weight), Ewma(self.weight)

    def arrived(self, now_ms: float, tokens: int) -> None:
        if self._last_arrival_ms is not None:
            self.gap_ms.add(max(0.0, now_ms - self._last_arrival_ms))
        self._last_arrival_ms = now_ms
        self.tokens.add(tokens)

    def stepped(self, step_ms: float) -> None:
        self.step_ms.add(step_ms)

    def finished(self, service_ms: float) -> None:
        self.service_ms.add(service_ms)

    def wait_ms(self, cap_ms: int) -> int:
        gap, step = self.gap_ms.value, self.step_ms.value
        if gap is None or step is None or gap >= step / 2:
            return 0  # fewer than two more requests expected within a step: nobody waits for them
        return min(cap_ms, round(gap))

    def budget(self, cap_tokens: int) -> int:
        gap, service, tokens = self.gap_ms.value, self.service_ms.value, self.tokens.value
        if gap is None or service is None or tokens is None:
            return cap_tokens  # nothing measured yet: as configured
        in_service = service / max(gap, 1e-3)  # Little's law: arrival rate x time in service
        wanted = round(in_service * tokens * self.headroom)
        # Never so small that a burst of a few requests has to wait for the batch to drain.
        floor = min(cap_tokens, max(self.min_budget, round(4 * tokens)))
        return max(floor, min(cap_tokens, wanted))


def batch_policy(kind: Policy) -> BatchPolicy:
    return AdaptiveBatching() if kind == "adaptive" else FixedBatching()
