"""Where a request runs: region by weighted ring (or residency pin), partition by a
second ring inside the region, skipping regions whose breaker is open."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from kinfer.streams.routing.ring import HashRing

DEFAULT_WEIGHTS: Mapping[str, float] = {"us-west": 60, "eu-central": 25, "ap-southeast": 15}
RESIDENCY_REGIONS: Mapping[str, str] = {"eu": "eu-central", "us": "us-west", "apac": "ap-southeast"}
"""Residency -> the one region a pinned tenant's requests may run in."""


@dataclass(frozen=True)
class Route:
    region: str
    partition: int
    failed_over_from: str | None = None
    """The region the ring chose first, when its breaker was open."""


@dataclass(frozen=True)
class NoRoute:
    """Every allowed region is unavailable (none at all: the residency names no region here)."""

    regions: tuple[str, ...]
    retry_after_ms: int = 0
    """The soonest any of them may take requests again."""


Allows = Callable[[str], Awaitable[tuple[bool, int]]]
"""Whether a region may take a request now, and if not, in how many ms it may."""


async def _always(_region: str) -> tuple[bool, int]:
    return True, 0


class RegionRouter:
    def __init__(self, weights: Mapping[str, float], partitions: Mapping[str, int]) -> None:
        missing = set(weights) - set(partitions)
        if missing:
            raise ValueError(f"no dispatch partition count for regions {sorted(missing)}")
        self.regions = HashRing(weights)
        self.partitions = {r: HashRing(dict.fromkeys(range(partitions[r]), 1.0), vnodes=200) for r in weights}

    def candidates(self, user: str, residency: str | None) -> list[str]:
        """Regions to try, in order: the pinned one alone, else the ring's walk from ``user``.

        Empty when the residency names no region served here.
        """
        if residency is not None:
            pinned = RESIDENCY_REGIONS.get(residency)
            return [pinned] if pinned in self.partitions else []
        return list(self.regions.walk(user))

    def partition(self, region: str, affinity: str) -> int:
        """The dispatch partition of ``affinity`` (session, else user) within ``region``."""
        return self.partitions[region].node(affinity)

    async def route(
        self,
        *,
        user: str,
        affinity: str,
        residency: str | None,
        allows: Allows = _always,
        order: Callable[[list[str]], list[str]] = list,
    ) -> Route | NoRoute:
        """``user`` picks the region (``order`` may rank the candidates, e.g. regions with live
        workers first); the first one ``allows`` takes it; ``affinity`` (session, else user)
        picks the partition in it."""
        candidates = order(self.candidates(user, residency))
        retry_after = 0
        for region in candidates:
            allowed, wait = await allows(region)
            if allowed:
                moved = candidates[0] if region != candidates[0] else None
                return Route(region, self.partition(region, affinity), moved)
            retry_after = min(retry_after or wait, wait)
        return NoRoute(tuple(candidates), retry_after)
