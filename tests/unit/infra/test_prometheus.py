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
from kinfer.schemas.errors import SERVER_ERRORS

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


TARGETS = {
    "kinfer:worker_utilisation:avg5m": {0.6, 0.7, 0.85},
    "kinfer:worker_batch_size_over_min:ratio5m": {2},
    "kinfer:cache_hit_ratio:rate5m": {0.85},
    "kinfer:request_seconds:p99_5m": {1},
    "kinfer:worker_error_ratio:rate5m": {0.02},
}
"""Each signal of the design's targets and tuning rules, and the thresholds its band shows."""


def test_every_target_is_a_recorded_signal_shown_as_a_band_at_its_threshold() -> None:
    recorded = set(re.findall(r"record: (kinfer:\S+)", (PROMETHEUS / "rules.yml").read_text()))
    dashboard = json.loads(DASHBOARD.read_text())
    for signal, thresholds in TARGETS.items():
        assert signal in recorded, signal
        (panel,) = [p for p in dashboard["panels"] if any(t["expr"] == signal for t in p["targets"])]
        defaults = panel["fieldConfig"]["defaults"]
        assert defaults["custom"]["thresholdsStyle"]["mode"] == "area", panel["title"]
        steps = {s["value"] for s in defaults["thresholds"]["steps"] if s["value"] is not None}
        assert steps == thresholds, panel["title"]


def test_the_three_tuning_rules_alert_at_the_designs_thresholds() -> None:
    rules = (PROMETHEUS / "rules.yml").read_text()
    assert "kinfer:worker_utilisation:avg5m < 0.60" in rules and "kinfer_worker_waiting_requests" in rules
    assert "kinfer:request_seconds:p99_5m > 1\n" in rules
    assert "kinfer:worker_error_ratio:rate5m > 0.02\n" in rules
    tested = (PROMETHEUS / "rules_test.yml").read_text()
    for alert in ("KinferUtilisationLow", "KinferLatencyHigh", "KinferErrorRateHigh"):
        assert f"alertname: {alert}" in tested, alert


def test_the_error_rate_rule_counts_the_server_errors_breakers_and_the_pool_count() -> None:
    """One list of server errors (``schemas.errors.SERVER_ERRORS``); the recording rule, which
    cannot import it, must name the same codes."""
    rules = (PROMETHEUS / "rules.yml").read_text()
    (codes,) = set(re.findall(r'kinfer_worker_answers_total\{status=~"([a-z_|]+)"\}', rules))
    assert set(codes.split("|")) == SERVER_ERRORS
