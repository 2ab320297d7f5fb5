"""Prometheus config, alert rules (with promtool's own unit tests) and the Grafana
dashboard are valid, and name only metrics the code defines."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

import kinfer.consumers.metrics
import kinfer.producers.gateway.metrics
import kinfer.streams.metrics
import kinfer.streams.redis_health

INFRA = Path(__file__).resolve().parents[3] / "infra"
PROMETHEUS = INFRA / "prometheus"
DASHBOARD = INFRA / "grafana" / "kinfer-dashboard.json"
assert kinfer.consumers.metrics and kinfer.producers.gateway.metrics and kinfer.streams.metrics


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: `make setup` installs Debian's prometheus package"
    return found


@pytest.mark.parametrize(
    "args",
    [
        ["check", "config", "prometheus.yml"],
        ["check", "rules", "rules.yml"],
        ["test", "rules", "rules_test.yml"],
    ],
)
def test_promtool_accepts(args: list[str]) -> None:
    result = subprocess.run([promtool(), *args], cwd=PROMETHEUS, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def defined_metrics() -> set[str]:
    names: set[str] = set()
    for collector in list(REGISTRY._collector_to_names):
        for metric in collector.collect():
            names.add(metric.name)
            names.update(sample.name for sample in metric.samples)
    return names


def used_metrics(text: str) -> set[str]:
    return {m for m in re.findall(r"\b(kinfer_[a-z_]+)", text)}


def test_rules_and_dashboard_name_only_real_metrics() -> None:
    known = defined_metrics()
    known |= {f"{n}_bucket" for n in known} | {f"{n}_total" for n in known}
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    unknown = (used_metrics((PROMETHEUS / "rules.yml").read_text()) | used_metrics(exprs)) - known
    assert not unknown, f"not defined by any kinfer process: {sorted(unknown)}"
