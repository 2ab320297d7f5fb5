"""How much a worker holds: past ``max_waiting`` waiting requests, the partitions holding the
most are paused, so the rest of the backlog stays in Kafka (where another worker can take its
partitions) rather than in one worker's memory. Pure: counts in, partitions out."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Set

TopicPartitionKey = tuple[str, int]


def full_partitions(
    waiting_sources: Iterable[TopicPartitionKey],
    assigned: int,
    max_waiting: int,
    paused: Set[TopicPartitionKey] = frozenset(),
) -> set[TopicPartitionKey]:
    """The partitions to keep paused. Each may hold its share of ``max_waiting`` (split evenly
    over the ``assigned`` partitions, at least one): one at its share is paused, and stays
    paused until it is down to half of it, so a partition at the edge is not paused and
    resumed every turn (each resume costs a fetch)."""
    cap = max(1, max_waiting // max(1, assigned))
    counts = Counter(waiting_sources)
    return {tp for tp, n in counts.items() if n >= cap or (tp in paused and n > cap // 2)}
