"""Linked clusters in admission, without services: a peer is up while its MirrorMaker
heartbeats are fresh; a resident tenant is served only through its own region's cluster."""

from __future__ import annotations

import asyncio

from kinfer.streams.residency import ResidencyGate
from kinfer.streams.routing.links import LinkView
from kinfer.streams.routing.regions import RegionRouter


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


def test_a_peer_is_down_until_its_first_heartbeat_and_after_its_last_goes_stale() -> None:
    clock = Clock()
    view = LinkView(["eu-central"], down_after_s=3, clock_ms=clock)
    assert view.up("us-west") and not view.up("eu-central") and view.lag_ms("eu-central") is None
    view.saw("eu-central", clock.now - 500)
    assert view.up("eu-central") and view.lag_ms("eu-central") == 500
    view.saw("eu-central", clock.now - 2000)  # an older one arriving late changes nothing
    clock.now += 2500
    assert view.up("eu-central")
    clock.now += 1001
    assert not view.up("eu-central") and view.retry_after_ms() == 3000


def test_the_ring_walks_past_a_peer_whose_cluster_is_down() -> None:
    clock = Clock()
    view = LinkView(["eu-central", "ap-southeast"], down_after_s=3, clock_ms=clock)
    view.saw("ap-southeast", clock.now)
    router = RegionRouter(
        {"us-west": 60, "eu-central": 25, "ap-southeast": 15},
        dict.fromkeys(("us-west", "eu-central", "ap-southeast"), 4),
    )
    user = next(u for u in (f"u{i}" for i in range(1000)) if router.candidates(u, None)[0] == "eu-central")

    async def allows(region: str) -> tuple[bool, int]:
        return view.up(region), 0 if view.up(region) else view.retry_after_ms()

    route = asyncio.run(router.route(user=user, affinity=user, residency=None, allows=allows))
    assert route.region != "eu-central" and route.failed_over_from == "eu-central"  # type: ignore[union-attr]


def test_a_resident_tenant_is_refused_outside_its_region_naming_where_to_go() -> None:
    us = ResidencyGate("us-west", linked=True)
    why = us.refusal("alice", "eu")
    assert why is not None and "eu-central" in why and "us-west" in why and "alice" in why
    assert ResidencyGate("eu-central", linked=True).refusal("alice", "eu") is None
    assert us.refusal("bob", None) is None
    assert (
        ResidencyGate("us-west", linked=False).refusal("alice", "eu") is None
    )  # one cluster: the pin routes
    assert "no region of this deployment" in (us.refusal("carol", "mars") or "")
