"""Gray failures: what a Redis, a worker and a broker that hang (rather than die) cost.

    python -m benchmarks.gray_failures [--rate 20] [--fault-s 30] [--faults none,redis-hung,...]

One private 3-broker KRaft cluster and its Redis (`kinfer up --services-only` with
``KINFER_KAFKA_BROKERS=3``, as an operator runs it); for each fault a pipeline of its own
(admission and two kinfer-tiny workers, defaults otherwise, under a topic prefix of its own)
takes an open-loop ``--rate`` requests/s for 5 s, then ``--fault-s`` with the fault, then 10 s:

- ``none``: the rate the others are compared with;
- ``redis-dead``: Redis stopped (connections refused), then started again;
- ``redis-hung``: Redis SIGSTOPped (connections stay open and nothing answers), then resumed;
- ``worker-hung``: one of the two workers SIGSTOPped, then resumed;
- ``broker-hung``: the broker leading most dispatch and reply partitions SIGSTOPped, then resumed.

Per fault: answers during it as a fraction of the no-fault run's (the issue's target for Redis:
at least 0.8), the longest gap between two answers (target under 2 s), the slowest answer,
answers ``unavailable``, and every request id's answers counted on the reply topic with a
plain consumer (lost, answered twice). Writes results/gray_failures.json and .png.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.plots import figure
from benchmarks.regions import settings_of
from benchmarks.stack import MODELS, REPO, busiest_leader, three_broker_env
from benchmarks.steady import Fault, SteadyRun, pause, steady_load
from kinfer.infra.demo import wait_until_serving
from kinfer.infra.settings import KinferSettings
from kinfer.infra.stack import local
from kinfer.infra.stack.stages import StageProcess, running
from kinfer.infra.topic_reader import read_topics
from kinfer.schemas import decode_reply

FAULTS = ("none", "redis-dead", "redis-hung", "worker-hung", "broker-hung")
BEFORE_S, AFTER_S = 5.0, 10.0
PREFIX = "gray"
"""The topics `kinfer up` made; each fault's pipeline starts where the one before left them
(every request answered), and its requests carry ids of their own."""
TIERS = '[tenants.default]\ntier = "enterprise"\n'
"""The client's tenant, far from its limits: the run measures faults, not rate limits."""


@contextmanager
def three_brokers(state: Path) -> Iterator[KinferSettings]:
    """`kinfer up --services-only` with three brokers on ports of its own; `kinfer down` always."""
    env = three_broker_env(state, PREFIX, REPO / ".kinfer" / "kafka" / "libs")
    cli = [sys.executable, "-m", "kinfer.infra.cli"]
    try:
        subprocess.run([*cli, "up", "--services-only"], env=env, check=True, capture_output=True)
        yield settings_of(env, "us-west")
    finally:
        subprocess.run([*cli, "down"], env=env, check=False, capture_output=True)


def stage_env(own: KinferSettings, prefix: str, tiers: Path) -> dict[str, str]:
    return {
        "KINFER_BOOTSTRAP_SERVERS": own.bootstrap,
        "KINFER_REDIS_URL": own.redis,
        "KINFER_STATE_DIR": str(own.state_dir),
        "KINFER_TOPIC_PREFIX": prefix,
        "KINFER_MODELS_DIR": str(MODELS),
        "KINFER_WORKER__MODEL": "kinfer-tiny",
        "KINFER_ADMISSION__TIERS_FILE": str(tiers),
    }


def the_fault(name: str, own: KinferSettings, external: KinferSettings, workers: list[StageProcess]) -> Fault:
    redis = local.redis_server(own)
    names = local.topic_layout(external).names
    if name == "redis-dead":

        def stop() -> None:
            redis.stop()

        return stop, redis.start
    if name == "redis-hung":
        return pause(redis.process.pid())
    if name == "worker-hung":
        return workers[1].pause, workers[1].resume
    if name == "broker-hung":
        return pause(busiest_leader(own, names.dispatch("us-west"), names.replies).process.pid())
    return (lambda: None), (lambda: None)


def answers_counted(settings: KinferSettings, topic: str, id_prefix: str) -> collections.Counter[str]:
    """Answers per request id on the reply topic, read with a plain consumer."""
    counts: collections.Counter[str] = collections.Counter()
    for record in read_topics(settings.kafka, topic.__eq__, 60):
        rid = decode_reply(record.value() or b"").request_id
        if rid.startswith(id_prefix):
            counts[rid] += 1
    return counts


def one_fault(name: str, own: KinferSettings, tiers: Path, rate: float, fault_s: float) -> dict[str, Any]:
    external = own.model_copy(update={"bootstrap_servers": own.bootstrap, "redis_url": own.redis})
    env, logs = stage_env(own, PREFIX, tiers), own.state_dir / "logs" / name
    argv = ["worker", "--max-wait-ms", "10"]
    workers = [StageProcess(f"worker{i}", argv, env, logs / f"worker{i}.log") for i in (0, 1)]
    with running([StageProcess("admission", ["admission"], env, logs / "admission.log"), *workers]):
        asyncio.run(wait_until_serving(external))
        away, back = the_fault(name, own, external, workers)
        try:
            run = steady_load(
                external.client_config(timeout_s=240),
                rate,
                BEFORE_S + fault_s + AFTER_S,
                {BEFORE_S: away, BEFORE_S + fault_s: back},
                f"{name}-",
            )
        finally:
            back()  # a stopped process would not hear the stop
    total = int((BEFORE_S + fault_s + AFTER_S) * rate)
    counts = answers_counted(external, local.topic_layout(external).names.replies, f"{name}-")
    return summarize(name, run, counts, total, fault_s)


def summarize(
    name: str, run: SteadyRun, counts: collections.Counter[str], total: int, fault_s: float
) -> dict[str, Any]:
    start, end = BEFORE_S + 1, BEFORE_S + fault_s  # the first second of the fault is its onset
    return {
        "fault": name,
        "answers_during": run.during(start, end),
        "answers_per_s_during": run.during(start, end) / (end - start),
        "longest_gap_s": run.longest_gap(start, end),
        "slowest_answer_s": max(run.waits),
        "unavailable": run.unavailable,
        "lost": sum(1 for i in range(total) if counts[f"{name}-{i}"] == 0),
        "answered_twice": sum(1 for n in counts.values() if n > 1),
        "client_saw_twice": run.duplicates,
    }


def plot(rows: list[dict[str, Any]], base: float) -> None:
    fig, (left, right) = figure(11, 4, ncols=2)
    names = [r["fault"] for r in rows]
    bars = left.bar(names, [r["answers_per_s_during"] / base for r in rows], color="#4477aa")
    left.bar_label(bars, fmt="%.2f")
    left.axhline(0.8, color="#cc3311", linestyle="--", label="target for Redis (0.8)")
    left.set_ylabel("answers/s during the fault ÷ without one")
    left.legend(loc="lower left")
    bars = right.bar(names, [r["longest_gap_s"] for r in rows], color="#228833")
    right.bar_label(bars, fmt="%.1f s")
    right.axhline(2.0, color="#cc3311", linestyle="--", label="target for Redis (2 s)")
    right.set_ylabel("longest gap between answers (s)")
    right.legend(loc="upper left")
    for ax in (left, right):
        ax.tick_params(axis="x", labelrotation=20)
    fig.suptitle("A hung Redis, worker and broker under a steady load (lost and twice: in the JSON)")
    fig.tight_layout()
    fig.savefig(report.png("gray_failures"), dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--fault-s", type=float, default=30.0)
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma-separated, of " + ", ".join(FAULTS))
    args = parser.parse_args()
    faults = ["none", *(f for f in args.faults.split(",") if f and f != "none")]
    unknown = set(faults) - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults: {', '.join(sorted(unknown))}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="kinfer-gray-") as tmp:
        report.progress(0, len(faults) + 1, "starting a 3-broker cluster and Redis")
        tiers = Path(tmp) / "tiers.toml"
        tiers.write_text(TIERS)
        with three_brokers(Path(tmp) / "state") as own:
            for i, name in enumerate(faults, start=1):
                report.progress(i, len(faults) + 1, f"{name}: {args.fault_s:g} s under {args.rate:g} req/s")
                rows.append(one_fault(name, own, tiers, args.rate, args.fault_s))
    base = rows[0]["answers_per_s_during"]
    for row in rows:
        row["ratio_to_none"] = row["answers_per_s_during"] / base
    plot(rows, base)
    report.write(
        "gray_failures",
        settings={**vars(args), "model": "kinfer-tiny", "workers": 2, "brokers": 3},
        results=rows,
        headline=[
            (
                f"{r['fault']}",
                f"{r['ratio_to_none']:.2f}x answers/s, gap {r['longest_gap_s']:.1f}s, "
                f"lost {r['lost']}, twice {r['answered_twice']}",
            )
            for r in rows
        ],
    )


if __name__ == "__main__":
    main()
