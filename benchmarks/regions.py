"""Regions as clusters: what a MirrorMaker 2 hop costs, and what a spoke's death costs.

    python -m benchmarks.regions [--requests 40] [--rate 5] [--seconds 60]

A private linked stack (`kinfer up --regions us-west,eu-central,ap-southeast`: a KRaft
cluster, a Redis, admission and a kinfer-tiny worker per region, one MirrorMaker 2), all
traffic sent by a client of us-west:

(a) hop: ``--requests`` sequential requests from users whose ring region is us-west (served
    in the cluster they entered) interleaved with as many whose region is eu-central (routed
    to eu-central's cluster by MirrorMaker, answered back through it): p50 and p99 of both.
(b) death: an open-loop ``--rate`` requests/s over all users for ``--seconds``; at a quarter
    every eu-central broker is SIGKILLed, at a half it is started again. Answers during the
    outage, how soon eu-central's users were routed around (kill to the first of their
    requests answered elsewhere), how long held requests waited, the longest gap between
    two answers, and every request id's answers counted on the reply topics with a plain
    consumer (lost, duplicated).

Writes results/regions.json and .png.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.plots import figure
from kinfer.infra.demo import percentile
from kinfer.infra.settings import KinferSettings
from kinfer.infra.stack import local
from kinfer.infra.stack.process import free_port, free_port_block
from kinfer.infra.stack.regions import worker_regions
from kinfer.infra.topic_reader import read_topics
from kinfer.producers import AsyncClient
from kinfer.schemas import SamplingParams, TopicNames, decode_reply
from kinfer.streams.routing.regions import DEFAULT_WEIGHTS
from kinfer.streams.routing.ring import HashRing

REGIONS = ("us-west", "eu-central", "ap-southeast")
REPO = Path(__file__).resolve().parents[1]
TIERS = """
[tenants.default]
tier = "enterprise"
"""
"""The client's tenant, far from its limits: the run measures regions, not rate limits."""


@contextmanager
def linked_stack(state: Path) -> Iterator[dict[str, str]]:
    """`kinfer up --regions` on ports of its own; `kinfer down` whatever happens."""
    (state.parent / "tiers.toml").write_text(TIERS)
    kafka = free_port_block(20 * len(REGIONS) + 2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINFER_")}
    env |= {
        "KINFER_STATE_DIR": str(state),
        "KINFER_KAFKA_JARS_DIR": str(REPO / ".kinfer" / "kafka" / "libs"),
        "KINFER_MODELS_DIR": str(REPO / ".kinfer" / "models"),
        "KINFER_KAFKA_PORT": str(kafka),
        "KINFER_KAFKA_CONTROLLER_PORT": str(kafka + 1),
        "KINFER_REDIS_PORT": str(free_port_block(len(REGIONS))),
        "KINFER_GATEWAY__PORT": str(free_port()),
        "KINFER_WORKER__MODEL": "kinfer-tiny",
        "KINFER_ADMISSION__PEER_DOWN_AFTER_S": "3",
        "KINFER_ADMISSION__TIERS_FILE": str(state.parent / "tiers.toml"),
    }
    cli = [sys.executable, "-m", "kinfer.infra.cli"]
    try:
        subprocess.run([*cli, "up", "--regions", ",".join(REGIONS)], env=env, check=True, capture_output=True)
        yield env
    finally:
        subprocess.run([*cli, "down"], env=env, check=False, capture_output=True)


def settings_of(env: dict[str, str], region: str) -> KinferSettings:
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        return KinferSettings(region=region)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def users_of(region: str, count: int) -> list[str]:
    ring = HashRing(dict(DEFAULT_WEIGHTS))
    return [u for u in (f"user-{i}" for i in range(100_000)) if ring.node(u) == region][:count]


async def hop(client: AsyncClient, requests: int) -> dict[str, list[float]]:
    """Latency (ms) of requests served where they entered, and of those one MM2 hop away."""
    sampling = SamplingParams(max_tokens=4)
    local_users, remote_users = users_of("us-west", requests), users_of("eu-central", requests)
    out: dict[str, list[float]] = {"local": [], "hop": []}
    for i in range(requests):
        for kind, user in (("local", local_users[i]), ("hop", remote_users[i])):
            began = time.perf_counter()
            await client.generate(f"{kind} {i} {time.time()}", user=user, sampling=sampling)
            out[kind].append((time.perf_counter() - began) * 1000)
    return out


async def death(
    client: AsyncClient, env: dict[str, str], rate: float, seconds: float
) -> tuple[list[dict[str, Any]], float, float]:
    """Open-loop load with eu-central's cluster killed at 1/4 and restarted at 1/2 of the run."""
    eu = local.kafka_cluster(settings_of(env, "eu-central"))
    ring = HashRing(dict(DEFAULT_WEIGHTS))
    sampling = SamplingParams(max_tokens=4)
    sent: list[dict[str, Any]] = []
    start = time.monotonic()

    async def one(i: int) -> None:
        user = f"load-{i}"
        row = {"rid": f"death-{i}", "user_region": ring.node(user), "sent_s": time.monotonic() - start}
        sent.append(row)
        try:
            result = await client.generate(f"d {i}", user=user, request_id=row["rid"], sampling=sampling)
            row |= {"worker": result.worker_id, "status": "ok"}
        except Exception as exc:  # noqa: BLE001 - an error answer is a result here
            row |= {"worker": None, "status": type(exc).__name__}
        row["answered_s"] = time.monotonic() - start

    async def restart() -> float:
        """Start eu-central's cluster again (in the background: the load goes on meanwhile)."""
        await asyncio.to_thread(local.up, settings_of(env, "eu-central"))
        return time.monotonic() - start

    tasks, killed_at, restarting = [], 0.0, None
    for i in range(int(rate * seconds)):
        now = time.monotonic() - start
        if not killed_at and now >= seconds / 4:
            for node in eu.nodes:
                if (pid := node.process.pid()) is not None:
                    os.kill(pid, signal.SIGKILL)
            killed_at = now
        if killed_at and restarting is None and now >= seconds / 2:
            restarting = asyncio.create_task(restart())
        tasks.append(asyncio.create_task(one(i)))
        await asyncio.sleep(max(0.0, (i + 1) / rate - (time.monotonic() - start)))
        if i % int(rate * 10) == 0:
            report.progress(1 + int(i / (rate * seconds) * 8), 10, "death: load, kill, restart")
    assert restarting is not None
    restarted_at = await restarting
    await asyncio.gather(*tasks)
    return sent, killed_at, restarted_at


def answers_counted(env: dict[str, str], rids: set[str]) -> collections.Counter[str]:
    """Answers per request id on us-west's reply topic and its return copies (plain consumer)."""
    settings = settings_of(env, "us-west")
    topics = set(TopicNames(settings.topic_prefix).returns("us-west", "kinfer.replies", settings.peers))
    counts: collections.Counter[str] = collections.Counter()
    for record in read_topics(settings.kafka, topics.__contains__, 60):
        rid = decode_reply(record.value() or b"").request_id
        if rid in rids:
            counts[rid] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--rate", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    report.progress(0, 10, "starting three linked clusters")
    with tempfile.TemporaryDirectory() as tmp, linked_stack(Path(tmp) / "state") as env:
        config = settings_of(env, "us-west").client_config(timeout_s=180)

        async def scenario() -> tuple[dict[str, list[float]], list[dict[str, Any]], float, float]:
            async with AsyncClient(config) as client:
                report.progress(1, 10, "hop: local vs one MirrorMaker hop")
                latencies = await hop(client, args.requests)
                rows, killed, restarted = await death(client, env, args.rate, args.seconds)
                return latencies, rows, killed, restarted

        latencies, rows, killed, restarted = asyncio.run(scenario())
        workers = worker_regions(settings_of(env, "us-west"))
        counts = answers_counted(env, {r["rid"] for r in rows})
    for row in rows:
        row["served_in"] = workers.get(row["worker"] or "", None)
    results = summarize(latencies, rows, killed, restarted, counts)
    report.write(
        "regions",
        settings={**vars(args), "model": "kinfer-tiny", "peer_down_after_s": 3, "regions": list(REGIONS)},
        results=results,
        samples={"latency_ms": latencies, "death": rows},
        headline=[
            (
                "p50 served where it entered / one MirrorMaker hop away",
                f"{results['local_p50_ms']:.0f} / {results['hop_p50_ms']:.0f} ms",
            ),
            ("eu-central users routed around after the kill", f"{results['routed_around_after_s']:.1f} s"),
            ("answers/s during the outage ÷ before", f"{results['outage_rate_ratio']:.2f}"),
            ("lost / duplicated answers", f"{results['lost']} / {results['duplicated']}"),
        ],
    )
    plot(latencies, rows, killed, restarted)


def summarize(
    latencies: dict[str, list[float]],
    rows: list[dict[str, Any]],
    killed: float,
    restarted: float,
    counts: collections.Counter[str],
) -> dict[str, Any]:
    # Gaps while load was offered (afterwards only held answers are still to come).
    last_sent = max(r["sent_s"] for r in rows)
    answered = sorted(r["answered_s"] for r in rows if r["answered_s"] <= last_sent)
    gaps = [b - a for a, b in itertools.pairwise(answered)]
    before = [t for t in answered if t < killed]
    during = [t for t in answered if killed <= t < restarted]
    around = [
        r
        for r in rows
        if r["user_region"] == "eu-central"
        and r["sent_s"] >= killed
        and r["served_in"] not in (None, "eu-central")
    ]
    held = [r for r in rows if r["served_in"] == "eu-central" and killed <= r["sent_s"] < restarted]
    return {
        "local_p50_ms": percentile(latencies["local"], 50),
        "local_p99_ms": percentile(latencies["local"], 99),
        "hop_p50_ms": percentile(latencies["hop"], 50),
        "hop_p99_ms": percentile(latencies["hop"], 99),
        "killed_at_s": killed,
        "restarted_at_s": restarted,
        "routed_around_after_s": min((r["answered_s"] for r in around), default=float("nan")) - killed,
        "held": len(held),
        "held_wait_max_s": max((r["answered_s"] - r["sent_s"] for r in held), default=0.0),
        "outage_rate_ratio": (len(during) / max(1e-9, restarted - killed))
        / (len(before) / max(1e-9, killed)),
        "longest_gap_while_loaded_s": max(gaps, default=0.0),
        "sent": len(rows),
        "answered_ok": sum(r["status"] == "ok" for r in rows),
        "errors": dict(collections.Counter(r["status"] for r in rows if r["status"] != "ok")),
        "lost": sum(1 for r in rows if counts[r["rid"]] == 0),
        "duplicated": sum(1 for r in rows if counts[r["rid"]] > 1),
    }


def plot(
    latencies: dict[str, list[float]], rows: list[dict[str, Any]], killed: float, restarted: float
) -> None:
    fig, (left, right) = figure(10, 3.6, ncols=2)
    left.boxplot([latencies["local"], latencies["hop"]], showfliers=False)
    left.set_xticks([1, 2], ["served where it entered", "one MirrorMaker hop away"])
    left.set_ylabel("latency (ms)")
    left.set_title("Sequential requests from a us-west client")
    colours = {"us-west": "#4477aa", "eu-central": "#228833", "ap-southeast": "#ccbb44", None: "#aa3377"}
    for region, colour in colours.items():
        mine = [r for r in rows if r["served_in"] == region]
        right.scatter(
            [r["sent_s"] for r in mine],
            [r["answered_s"] - r["sent_s"] for r in mine],
            s=6,
            color=colour,
            label=f"served in {region}" if region else "error",
        )
    for at, what in ((killed, "eu-central killed"), (restarted, "restarted")):
        right.axvline(at, color="#999999", linestyle="--")
        right.text(at, right.get_ylim()[1] * 0.9, f" {what}", fontsize=7)
    right.set_xlabel("sent at (s)")
    right.set_ylabel("latency (s)")
    right.set_title("A spoke's whole cluster dies mid-run")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(report.png("regions"), dpi=120)


if __name__ == "__main__":
    main()
