"""Who joins the batch next: priority bands, and deficit round-robin between tenants by tokens.

Pure: no clock, no Kafka. ``waiting.py`` keeps the entries; this decides their order.

- **Within a band**, each tenant has its own queue (earliest deadline first, then arrival).
  Tenants take turns; a turn grants ``quantum x weight`` tokens of credit (its *deficit*) and
  the tenant's requests join while their tokens (prompt + max new) fit its credit. A tenant
  with a backlog of long requests thus gets its weight's share of the band's tokens, not of
  its requests, and cannot starve a tenant that sends a few (Shreedhar & Varghese's DRR).
  Credit is not banked: a tenant whose queue empties starts its next backlog from zero.
- **Between bands**, the highest band with a waiting request goes first, except that while a
  lower band waits it is owed ``lower_share`` of the tokens joining (default 10 %): every
  token a higher band takes adds ``share / (1 - share)`` to the lower band's credit, and the
  lower band's head joins once its tokens fit that credit. So a lower band's waiting request
  is starved at most until the higher band took ``tokens x (1 - share) / share`` tokens
  (9x its own tokens by default), however heavy the higher band's load.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Generic, Protocol, TypeVar


class Queued(Protocol):
    """What fair queuing reads of a waiting entry."""

    @property
    def tokens(self) -> int: ...

    def __lt__(self, other: Any, /) -> bool:
        """Order within one tenant: earliest deadline, then arrival."""
        ...


E = TypeVar("E", bound=Queued)

DEFAULT_QUANTUM = 256
"""Tokens a tenant of weight 1 is granted per turn: about one short request. Smaller is fairer
per step, larger is fewer turns to grant a long request; the share does not depend on it."""
DEFAULT_LOWER_SHARE = 0.1


class Band(Generic[E]):
    """One priority band: a queue per tenant, served by deficit round-robin."""

    def __init__(self, quantum: float) -> None:
        self.quantum = quantum
        self.queues: dict[str, list[E]] = {}
        self.weights: dict[str, float] = {}
        self.order: deque[str] = deque()
        """Tenants with waiting entries, the one whose turn it is first."""
        self.deficit: dict[str, float] = {}
        self._granted = False
        """Whether the tenant at the front was granted its quantum for this turn already."""

    def __len__(self) -> int:
        return sum(len(q) for q in self.queues.values())

    def __bool__(self) -> bool:
        return bool(self.order)

    def entries(self) -> Iterator[E]:
        for queue in self.queues.values():
            yield from queue

    def push(self, entry: E, tenant: str, weight: float) -> None:
        queue = self.queues.get(tenant)
        if queue is None:
            queue = self.queues[tenant] = []
            self.order.append(tenant)
            self.deficit[tenant] = 0.0
        self.weights[tenant] = weight
        heapq.heappush(queue, entry)

    def peek(self) -> E:
        """The entry DRR serves next (granting turns until one is affordable). Calling it again
        without :meth:`pop` gives the same entry."""
        assert self.order, "peek() of an empty band"
        while True:
            tenant = self.order[0]
            head = self.queues[tenant][0]
            if head.tokens <= self.deficit[tenant]:
                return head
            if not self._granted:
                self.deficit[tenant] += self.quantum * self.weights[tenant]
                self._granted = True
                continue
            self.order.rotate(-1)  # its credit falls short: the next tenant's turn
            self._granted = False

    def pop(self) -> E:
        head = self.peek()
        tenant = self.order[0]
        queue = self.queues[tenant]
        heapq.heappop(queue)
        self.deficit[tenant] -= head.tokens
        if not queue:  # no banking: an empty queue leaves the round with nothing owed
            self.order.popleft()
            del self.queues[tenant], self.deficit[tenant], self.weights[tenant]
            self._granted = False
        return head

    def take_if(self, done: Callable[[E], bool]) -> list[E]:
        """Remove and return the entries ``done`` says (expired, or their partition moved)."""
        out: list[E] = []
        for tenant in list(self.queues):
            queue = self.queues[tenant]
            kept = [e for e in queue if not done(e)]
            if len(kept) == len(queue):
                continue
            out += [e for e in queue if done(e)]
            if kept:
                heapq.heapify(kept)
                self.queues[tenant] = kept
            else:
                self.order.remove(tenant)
                if self.order and tenant == self.order[0]:
                    self._granted = False
                del self.queues[tenant], self.deficit[tenant], self.weights[tenant]
        self._granted = self._granted and bool(self.order)
        return out


class FairOrder(Generic[E]):
    """Bands by priority (higher first), with a share of tokens kept for lower bands."""

    def __init__(self, quantum: float = DEFAULT_QUANTUM, lower_share: float = DEFAULT_LOWER_SHARE) -> None:
        if not 0.0 <= lower_share < 1.0:
            raise ValueError(f"lower_share must be in [0, 1), got {lower_share}")
        self.quantum = quantum
        self.lower_share = lower_share
        self.bands: dict[int, Band[E]] = {}
        self.credit: dict[int, float] = {}
        """Per band: tokens owed to the bands below it."""

    def __len__(self) -> int:
        return sum(len(b) for b in self.bands.values())

    def entries(self) -> Iterator[E]:
        for band in self.bands.values():
            yield from band.entries()

    def push(self, entry: E, tenant: str, band: int = 0, weight: float = 1.0) -> None:
        if band not in self.bands:
            self.bands[band] = Band(self.quantum)
            self.credit[band] = 0.0
        self.bands[band].push(entry, tenant, weight)

    def peek(self) -> E | None:
        path = self._path()
        return self.bands[path[-1]].peek() if path else None

    def pop(self) -> E:
        path = self._path()
        assert path, "pop() of an empty queue"
        chosen = path[-1]
        entry = self.bands[chosen].pop()
        for above in path[:-1]:  # they passed their turn down: the debt is paid that far
            self.credit[above] = max(0.0, self.credit[above] - entry.tokens)
        if self._live_below(chosen):
            self.credit[chosen] += entry.tokens * self.lower_share / (1.0 - self.lower_share)
        return entry

    def take_if(self, done: Callable[[E], bool]) -> list[E]:
        return [e for band in self.bands.values() for e in band.take_if(done)]

    def _path(self) -> list[int]:
        """The bands from the highest waiting one down to the one that serves next."""
        live = sorted((b for b, q in self.bands.items() if q), reverse=True)
        for band in self.credit:
            if not self._live_below(band):
                self.credit[band] = 0.0  # nobody below waits: nothing is owed, nothing banked
        path: list[int] = []
        for i, band in enumerate(live):
            path.append(band)
            if i + 1 == len(live) or self.credit[band] < self.bands[live[i + 1]].peek().tokens:
                break
        return path

    def _live_below(self, band: int) -> bool:
        return any(b < band and q for b, q in self.bands.items())
