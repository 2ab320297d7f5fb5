"""`make bench` / `kinfer bench [NAME ...]`: every benchmark, each in its own process against
its own private stack, with a progress bar per benchmark and a closing table of headlines.

    python -m benchmarks.suite [NAME ...]

Each benchmark's output goes to ``benchmarks/results/<name>.log``; its figures to
``<name>.json`` and ``<name>.png`` beside it (see ``benchmarks.report``).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from benchmarks.report import REPO, RESULTS


@dataclass(frozen=True)
class Benchmark:
    name: str
    about: str
    minutes: float
    """About how long it takes on the 2-core reference machine."""


BENCHMARKS = (
    Benchmark("overhead", "what the pipeline adds at light load, by stage, vs a bare Kafka floor", 0.7),
    Benchmark("ceiling", "whole pipeline vs the raw engine at saturation, kinfer-tiny and SmolLM2", 1.5),
    Benchmark("batching", "batched worker vs a batch-1 consumer, latency vs offered load", 3.3),
    Benchmark("continuous", "continuous vs static batching on short and long requests", 1.0),
    Benchmark("adaptive", "adaptive batching vs fixed batch waits at three loads", 3.2),
    Benchmark("admission", "decisions/s of one admission process, by path", 0.5),
    Benchmark("cache", "response cache: hit rate and hit latency with repeated prompts", 0.4),
    Benchmark("hashing", "keys moved when capacity is added, vs Kafka's partitioner", 0.1),
    Benchmark("warm_vs_cold", "time to first answer: cold start vs promoted standby", 1.2),
    Benchmark("quantization", "SmolLM2 in float32, bfloat16, int8: memory, perplexity, speed", 0.4),
    Benchmark("sampling", "SmolLM2 with penalties, logprobs, a JSON Schema; n=4 vs 4 requests", 1.5),
    Benchmark("parallel", "tensor and pipeline parallel ranks", 2.8),
    Benchmark("flow", "cancel storm tokens saved; fair share and priority bands on a saturated worker", 9.0),
    Benchmark("regions", "linked clusters: latency of a MirrorMaker 2 hop; a spoke killed mid-run", 4.0),
    Benchmark("gray_failures", "a hung Redis, worker and broker under steady load: rate, gaps, lost", 6.0),
    Benchmark("engines", "torch vs llama.cpp vs llama-server (--engine openai): tok/s, TTFT, ratios", 20.0),
)
BY_NAME = {b.name: b for b in BENCHMARKS}
_PROGRESS = re.compile(r"^\[(\d+)/(\d+)\] (.*)$")


def run(names: list[str], console: Console | None = None) -> int:
    """Run the named benchmarks (all when empty); 0 when every one succeeded."""
    console = console or Console()
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        console.print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
        return 2
    chosen = [BY_NAME[n] for n in names] if names else list(BENCHMARKS)
    RESULTS.mkdir(exist_ok=True)
    expected = sum(b.minutes for b in chosen)
    console.print(f"{len(chosen)} benchmark(s), about {expected:.0f} min on a 2-core machine")
    outcomes: dict[str, tuple[bool, float]] = {}
    columns = (
        TextColumn("{task.fields[name]:<13}"),
        BarColumn(),
        TextColumn("{task.completed:>3.0f}/{task.total:<3.0f}"),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, console=console) as bars:
        tasks = {b.name: bars.add_task("waiting", total=1, name=b.name, start=False) for b in chosen}
        for bench in chosen:
            outcomes[bench.name] = _run_one(bench, bars, tasks[bench.name])
    console.print(_table(chosen, outcomes))
    return 0 if all(ok for ok, _ in outcomes.values()) else 1


def _run_one(bench: Benchmark, bars: Progress, task: TaskID) -> tuple[bool, float]:
    bars.start_task(task)
    started = time.monotonic()
    log = RESULTS / f"{bench.name}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-u", "-m", f"benchmarks.{bench.name}"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            if match := _PROGRESS.match(line.strip()):
                done, total, what = int(match[1]), int(match[2]), match[3]
                bars.update(task, completed=done, total=total, description=what[:60])
        code = proc.wait()
    ok = code == 0
    bars.update(task, description="done" if ok else f"FAILED (exit {code}; see {log})")
    bars.stop_task(task)
    return ok, time.monotonic() - started


def _table(chosen: list[Benchmark], outcomes: dict[str, tuple[bool, float]]) -> Table:
    table = Table(title="kinfer benchmarks (ratios from one run; see benchmarks/results/*.json)")
    for column in ("benchmark", "time", "figure", "value"):
        table.add_column(column)
    for bench in chosen:
        ok, seconds = outcomes[bench.name]
        headline: list[tuple[str, str]] = []
        report = RESULTS / f"{bench.name}.json"
        if ok and report.exists():
            headline = [(str(a), str(b)) for a, b in json.loads(report.read_text()).get("headline", [])]
        rows = headline or [("failed", f"see {RESULTS / bench.name}.log")]
        for i, (label, value) in enumerate(rows):
            name, took = (bench.name, f"{seconds / 60:.1f} min") if i == 0 else ("", "")
            table.add_row(name, took, label, value)
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default all): {', '.join(BY_NAME)}")
    args = parser.parse_args(argv)
    sys.exit(run(args.names))


if __name__ == "__main__":
    main()
