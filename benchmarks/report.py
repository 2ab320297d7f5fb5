"""What every benchmark writes: ``benchmarks/results/<name>.json`` with the machine, the
versions, the settings, the headline figures and the raw samples, and progress lines the
suite turns into bars.

Progress is printed as ``[done/total] what`` on its own line, readable by a person running a
benchmark alone and parsed by ``benchmarks.suite`` for its bars.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent

Headline = list[tuple[str, str]]
"""(label, value) pairs the suite's closing table shows for a benchmark."""


def progress(done: int, total: int, what: str) -> None:
    print(f"[{done}/{total}] {what}", flush=True)


def machine() -> dict[str, Any]:
    """Where the figures came from: the host, its cores, and the versions of every part."""
    versions: dict[str, str | None] = {}
    for dist in ("torch", "confluent-kafka", "faust-streaming", "aiokafka", "redis", "transformers"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    try:
        import confluent_kafka

        versions["librdkafka"] = confluent_kafka.libversion()[0]
    except ImportError:
        pass
    jars = sorted((REPO / ".kinfer" / "kafka" / "libs").glob("kafka_2.13-*.jar"))
    versions["kafka"] = jars[0].stem.removeprefix("kafka_2.13-") if jars else None
    versions["redis-server"] = _redis_server_version()
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "versions": versions,
    }


def _redis_server_version() -> str | None:
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout
    return next((part.split("=", 1)[1] for part in out.split() if part.startswith("v=")), out.strip())


def write(
    name: str,
    *,
    settings: dict[str, Any],
    results: Any,
    headline: Headline,
    samples: Any = None,
) -> Path:
    """``results/<name>.json``; returns its path (the PNG goes beside it as ``<name>.png``)."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    report = {
        "benchmark": name,
        "machine": machine(),
        "settings": settings,
        "headline": headline,
        "results": results,
        "samples": samples,
    }
    path.write_text(json.dumps(report, indent=2) + "\n")
    for label, value in headline:
        print(f"{label}: {value}", flush=True)
    print(f"wrote {path} and {path.with_suffix('.png').name}", flush=True)
    return path


def png(name: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    return RESULTS / f"{name}.png"
