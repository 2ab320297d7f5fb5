"""Where a request runs: region by weighted ring (or residency pin), partition by a
second ring inside the region, skipping regions whose breaker is open."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from streams.routing.ring import HashRing

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
    """Every allowed region is unavailable."""

    regions: tuple[str, ...]


class RegionRouter:
    def __init__(self, weights: Mapping[str, float], partitions: Mapping[str, int]) -> None:
        missing = set(weights) - set(partitions)
        if missing:
            raise ValueError(f"no dispatch partition count for regions {sorted(missing)}")
        self.regions = HashRing(weights)
        self.partitions = {r: HashRing(dict.fromkeys(range(partitions[r]), 1.0), vnodes=200) for r in weights}

    def route(
        self,
        *,
        user: str,
        affinity: str,
        residency: str | None,
        is_open: Callable[[str], bool] = lambda _region: False,
    ) -> Route | NoRoute:
        """``user`` picks the region; ``affinity`` (session, else user) the partition in it."""
        if residency is not None:
            pinned = RESIDENCY_REGIONS.get(residency)
            if pinned is None or pinned not in self.partitions:
                raise ValueError(f"no region serves residency {residency!r}")
            if is_open(pinned):
                return NoRoute((pinned,))
            return Route(pinned, self.partitions[pinned].node(affinity))
        first: str | None = None
        for region in self.regions.walk(user):
            first = first or region
            if not is_open(region):
                moved = first if region != first else None
                return Route(region, self.partitions[region].node(affinity), moved)
        return NoRoute(self.regions.nodes)
