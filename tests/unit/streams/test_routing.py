"""Ring properties on 100k keys, as issue 3 asks. Prints Kafka's default
partitioner's figure (murmur2 % N) beside ours for the 'add a node' case."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

import pytest

from kinfer.streams.routing.regions import DEFAULT_WEIGHTS, NoRoute, RegionRouter, Route
from kinfer.streams.routing.ring import HashRing

KEYS = [f"user-{i}" for i in range(100_000)]


def murmur2(data: bytes) -> int:
    """Kafka's default partitioner hash (Java client), for comparison."""
    m, r, length = 0x5BD1E995, 24, len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = data[length - length % 4 :]
    if len(tail) >= 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h & 0x7FFFFFFF


@pytest.mark.parametrize("n", [3, 8])
def test_adding_a_node_moves_only_to_it_and_few(n: int) -> None:
    before = HashRing(dict.fromkeys(range(n), 1.0))
    after = HashRing(dict.fromkeys(range(n + 1), 1.0))
    moved = [(before.node(k), after.node(k)) for k in KEYS if before.node(k) != after.node(k)]
    assert all(new == n for _, new in moved), "a key moved between old nodes"
    share = len(moved) / len(KEYS)
    kafka_moved = sum(murmur2(k.encode()) % n != murmur2(k.encode()) % (n + 1) for k in KEYS) / len(KEYS)
    print(
        f"\n{n}->{n + 1} nodes: ring moved {share:.3f} of keys; Kafka's murmur2 % N moved {kafka_moved:.3f}"
    )
    assert share <= 1 / (n + 1) + 0.02
    assert kafka_moved > 0.5


@pytest.mark.parametrize("n", [3, 6, 12])
def test_equal_weights_balance(n: int) -> None:
    ring = HashRing(dict.fromkeys(range(n), 1.0))
    load = Counter(ring.node(k) for k in KEYS)
    assert max(load.values()) / (len(KEYS) / n) <= 1.10


def test_weighted_shares_match_weights() -> None:
    ring = HashRing(DEFAULT_WEIGHTS)
    load = Counter(ring.node(k) for k in KEYS)
    total = sum(DEFAULT_WEIGHTS.values())
    for region, weight in DEFAULT_WEIGHTS.items():
        assert abs(load[region] / len(KEYS) - weight / total) <= 0.05 * weight / total, (region, load)


def test_lookup_is_fast() -> None:
    ring = HashRing(DEFAULT_WEIGHTS)
    sample = KEYS[:20_000]
    best = float("inf")
    for _ in range(3):  # best of three: the machine is shared
        t0 = time.perf_counter()
        for k in sample:
            ring.node(k)
        best = min(best, (time.perf_counter() - t0) / len(sample))
    print(f"\nlookup {best * 1e6:.2f} us")
    assert best < 10e-6


def test_walk_gives_each_node_once_owner_first() -> None:
    ring = HashRing(DEFAULT_WEIGHTS)
    for k in KEYS[:200]:
        order = list(ring.walk(k))
        assert order[0] == ring.node(k) and sorted(order) == sorted(DEFAULT_WEIGHTS)


def router() -> RegionRouter:
    return RegionRouter(DEFAULT_WEIGHTS, dict.fromkeys(DEFAULT_WEIGHTS, 6))


def route(
    r: RegionRouter,
    *,
    user: str,
    affinity: str,
    residency: str | None,
    is_open: Callable[[str], bool] = lambda _: False,
) -> Route | NoRoute:
    """The router asked with a breaker view: an open region refuses for a second."""

    async def allows(region: str) -> tuple[bool, int]:
        return (False, 1000) if is_open(region) else (True, 0)

    return asyncio.run(r.route(user=user, affinity=affinity, residency=residency, allows=allows))


def test_session_keeps_its_partition_within_a_region() -> None:
    r = router()
    routes = {route(r, user=f"u{i}", affinity="session-1", residency=None) for i in range(50)}
    assert (
        len({(x.region, x.partition) for x in routes if isinstance(x, Route) and x.region == "us-west"}) == 1
    )


def test_eu_residency_pins_even_when_another_region_is_open() -> None:
    r = router()
    for i in range(500):
        found = route(r, user=f"u{i}", affinity=f"u{i}", residency="eu", is_open=lambda reg: reg == "us-west")
        assert isinstance(found, Route) and found.region == "eu-central"


def test_eu_resident_gets_no_route_when_eu_is_open() -> None:
    found = route(router(), user="u", affinity="u", residency="eu", is_open=lambda reg: reg == "eu-central")
    assert found == NoRoute(("eu-central",), retry_after_ms=1000)


def test_open_breaker_fails_over_to_next_region() -> None:
    r = router()
    for i in range(500):
        healthy = route(r, user=f"u{i}", affinity=f"u{i}", residency=None)
        assert isinstance(healthy, Route)
        moved = route(r, user=f"u{i}", affinity=f"u{i}", residency=None, is_open=healthy.region.__eq__)
        assert isinstance(moved, Route) and moved.region != healthy.region
        assert moved.failed_over_from == healthy.region


def test_all_open_is_no_route() -> None:
    assert isinstance(
        route(router(), user="u", affinity="u", residency=None, is_open=lambda _: True), NoRoute
    )


def test_the_order_ranks_candidates_before_breakers_are_asked() -> None:
    r = router()
    for i in range(200):
        last = r.candidates(f"u{i}", None)[-1]
        found = asyncio.run(
            r.route(user=f"u{i}", affinity="a", residency=None, order=lambda c, last=last: [last, *c[:-1]])
        )
        assert isinstance(found, Route) and found.region == last and found.failed_over_from is None
