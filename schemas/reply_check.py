"""Is a reply address answerable? Shared by admission and workers.

A reply may never go to one of the pipeline's own topics, and its topic and
partition must exist: an answer produced to a missing partition fails the whole
transaction (or send) that carries it, again on every retry. Stages ask their own
Kafka client for partition counts; :class:`PartitionCounts` keeps them, so a topic
costs one metadata lookup a minute, and a missing one is looked up again only after
a few seconds however many records name it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from kinfer.schemas.messages import ReplyAddress
from kinfer.schemas.topics import TopicNames

KNOWN_FOR_S = 60.0
"""How long a topic's partition count is trusted."""
MISSING_FOR_S = 5.0
"""How long a topic (or a partition) found missing stays missing before it is looked up again."""


def unanswerable(address: ReplyAddress, names: TopicNames, partitions: int | None) -> str | None:
    """Why no answer can go to ``address`` (``partitions``: its topic's count, None = no such
    topic), or None when it can."""
    if names.owns(address.topic):
        return f"reply_to names the pipeline's own topic {address.topic}"
    return missing(address, partitions)


def missing(address: ReplyAddress, partitions: int | None) -> str | None:
    """Why ``address`` does not exist (``partitions`` as for :func:`unanswerable`), or None."""
    if partitions is None:
        return f"reply topic {address.topic} does not exist"
    if address.partition >= partitions:
        return f"reply topic {address.topic} has {partitions} partitions; {address.partition} is not one"
    return None


class PartitionCounts:
    """Partition counts of reply topics as last looked up (None = the topic was missing)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._seen: dict[str, tuple[int | None, float]] = {}

    def fresh(self, address: ReplyAddress) -> tuple[bool, int | None]:
        """(whether the cached count can answer for ``address``, the count)."""
        count, at = self._seen.get(address.topic, (None, float("-inf")))
        age = self.clock() - at
        if count is None or address.partition >= count:  # missing: retried after a short while
            return age < MISSING_FOR_S, count
        return age < KNOWN_FOR_S, count

    def put(self, topic: str, count: int | None) -> None:
        self._seen[topic] = (count, self.clock())
