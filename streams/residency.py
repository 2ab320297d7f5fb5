"""Residency by construction on linked clusters: a pinned tenant is served only through the
cluster of its region.

Its request is refused where it entered any other region's cluster, before anything of the
tenant is written there (no idempotency mark, rate-limit bucket, cache read, dead letter or
forward): the refusal names the region to connect to. MirrorMaker 2 cannot forward a record
without it having been stored in the source cluster first, so forwarding would already have
put the prompt outside its region; what a misdirected client wrote to the ingress topic stays
there until retention (``kinfer regions audit`` finds it; on a secured deployment the tenant's
Kafka user exists only in its own region's cluster, so it cannot be written at all).
"""

from __future__ import annotations

from dataclasses import dataclass

from kinfer.streams.routing.regions import RESIDENCY_REGIONS


@dataclass(frozen=True)
class ResidencyGate:
    home: str
    """The region whose cluster this admission reads."""
    linked: bool
    """Regions are clusters of their own; on one cluster the router's pin is enough."""

    def refusal(self, tenant: str, residency: str | None) -> str | None:
        """Why ``tenant`` may not be served through this region's cluster, or None."""
        if not self.linked or residency is None:
            return None
        pinned = RESIDENCY_REGIONS.get(residency)
        if pinned == self.home:
            return None
        where = f"region {pinned}" if pinned else "no region of this deployment"
        return (
            f"tenant {tenant!r} is resident in {residency!r} ({where}); this is {self.home}'s cluster, "
            f"which may hold none of its records: send its requests to {pinned or 'its region'}'s cluster"
        )
