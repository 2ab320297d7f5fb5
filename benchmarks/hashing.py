"""Consistent hashing vs Kafka's default partitioner: keys moved when capacity changes, and
how evenly load spreads.

    python -m benchmarks.hashing [--keys 100000]

Keys are user ids. For partitions, kinfer's ring (200 virtual nodes per partition, SHA-256)
is compared with Kafka's default partitioner (murmur2(key) mod partitions) when a region's
dispatch topic grows from 6 to 7 partitions; for regions, kinfer's weighted ring when a
fourth region is added beside the default three. Moved = share of keys whose home changed
(session affinity and warm caches lost); the ideal is the new capacity's share. Load = the
busiest node's keys over its fair share (its weight's share; 1.0 is perfectly even). Pure
computation, no services. Writes benchmarks/results/hashing.json and .png.
"""

from __future__ import annotations

import argparse
import collections
from collections.abc import Callable
from typing import Any

from aiokafka.partitioner import murmur2

from benchmarks import report
from benchmarks.plots import figure
from kinfer.streams.routing.regions import DEFAULT_WEIGHTS
from kinfer.streams.routing.ring import HashRing


def kafka_default(partitions: int) -> Callable[[str], int]:
    """What Kafka's default partitioner does with a keyed record."""
    return lambda key: (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def ring_of(partitions: int) -> Callable[[str], int]:
    ring = HashRing(dict.fromkeys(range(partitions), 1.0), vnodes=200)
    return ring.node


def compare(
    keys: list[str],
    before: Callable[[str], Any],
    after: Callable[[str], Any],
    weights: dict[Any, float] | None = None,
) -> dict[str, float]:
    """Share of keys moved, and the most loaded node's keys over its fair share (its weight's
    share of the keys; equal shares when no weights are given)."""
    old = [before(k) for k in keys]
    new = [after(k) for k in keys]
    moved = sum(a != b for a, b in zip(old, new, strict=True)) / len(keys)
    counts = collections.Counter(new)
    shares = weights or dict.fromkeys(counts, 1.0)
    total = sum(shares.values())
    return {
        "moved": moved,
        "max_over_fair": max(counts[n] / (len(keys) * w / total) for n, w in shares.items()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keys", type=int, default=100_000)
    args = parser.parse_args()
    report.progress(0, 1, f"{args.keys} keys")
    keys = [f"user-{i}" for i in range(args.keys)]
    three = dict(DEFAULT_WEIGHTS)
    four = {**three, "sa-east": sum(three.values()) / len(three)}
    rows = {
        "partitions 6 -> 7, Kafka default": compare(keys, kafka_default(6), kafka_default(7)),
        "partitions 6 -> 7, kinfer ring": compare(keys, ring_of(6), ring_of(7)),
        "regions 3 -> 4, kinfer ring": compare(keys, HashRing(three).node, HashRing(four).node, four),
    }
    ideal = {"partitions": 1 / 7, "regions": four["sa-east"] / sum(four.values())}
    for name, row in rows.items():
        print(
            f"{name:34} moved {100 * row['moved']:5.1f} %"
            f"  busiest node / fair share {row['max_over_fair']:.3f}"
        )
    print(
        f"ideal moved: partitions {100 * ideal['partitions']:.1f} %, regions {100 * ideal['regions']:.1f} %"
    )
    report.progress(1, 1, "done")
    report.write(
        "hashing",
        settings=vars(args),
        results={"rows": rows, "ideal_moved": ideal},
        headline=[
            (f"{name}: moved (busiest / fair)", f"{100 * row['moved']:.1f} % ({row['max_over_fair']:.3f})")
            for name, row in rows.items()
        ],
    )
    fig, ax = figure(7, 3.4)
    ax.bar(list(rows), [100 * r["moved"] for r in rows.values()], color=["#999999", "#4477aa", "#228833"])
    ax.set_ylabel("% of keys moved")
    ax.set_title("Keys whose home changes when capacity is added")
    ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(report.png("hashing"), dpi=120)


if __name__ == "__main__":
    main()
