"""A weighted consistent-hash ring: SHA-256 of a key onto virtual nodes.

Adding a node moves keys only onto the new node (never between old ones), and
about 1/(N+1) of them; virtual nodes even out the shares.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Hashable, Iterator, Mapping
from typing import Generic, TypeVar

N = TypeVar("N", bound=Hashable)

DEFAULT_VNODES = 4000
"""Virtual nodes per unit of weight share; shares within ~2% of the weights at 4000."""


def hash64(key: str) -> int:
    """First 8 bytes of SHA-256, as an unsigned integer: stable across processes and hosts."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


class HashRing(Generic[N]):
    """Maps keys to nodes; ``weights`` are relative (60/25/15 or 1/1/1)."""

    def __init__(self, weights: Mapping[N, float], *, vnodes: int = DEFAULT_VNODES) -> None:
        if not weights or any(w <= 0 for w in weights.values()):
            raise ValueError(f"a ring needs nodes with positive weights, got {dict(weights)}")
        total = sum(weights.values())
        points: list[tuple[int, N]] = []
        for node, weight in weights.items():
            # Each node's points depend only on the node and its count: adding a node
            # leaves the others' points where they were.
            count = max(1, round(vnodes * len(weights) * weight / total))
            points += [(hash64(f"{node}#{i}"), node) for i in range(count)]
        points.sort(key=lambda p: p[0])
        self._hashes = [h for h, _ in points]
        self._nodes = [n for _, n in points]
        self.nodes = tuple(weights)

    def node(self, key: str) -> N:
        """The node owning ``key``: the first point clockwise from its hash."""
        i = bisect.bisect_right(self._hashes, hash64(key))
        return self._nodes[i % len(self._nodes)]

    def walk(self, key: str) -> Iterator[N]:
        """Distinct nodes clockwise from ``key``: the owner first, then its fail-over order."""
        start = bisect.bisect_right(self._hashes, hash64(key))
        seen: set[N] = set()
        for step in range(len(self._nodes)):
            node = self._nodes[(start + step) % len(self._nodes)]
            if node not in seen:
                seen.add(node)
                yield node
                if len(seen) == len(self.nodes):
                    return
