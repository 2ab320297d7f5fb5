"""The monitoring reference: every metric a kinfer process exports, from the collectors its
modules register, and every recording and alert rule, from ``infra/prometheus/rules.yml``."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import yaml
from prometheus_client.metrics import MetricWrapperBase

import kinfer.consumers.metrics
import kinfer.producers.gateway.metrics
import kinfer.streams.metrics
import kinfer.streams.redis_health
from kinfer.infra.reference.markdown import cell

RULES = Path(__file__).resolve().parents[1] / "prometheus" / "rules.yml"

EXPORTERS: dict[str, list[ModuleType]] = {
    "admission (`kinfer admission --metrics-port`)": [kinfer.streams.metrics, kinfer.streams.redis_health],
    "workers and the pool controller (`kinfer worker` / `kinfer pool --metrics-port`)": [
        kinfer.consumers.metrics
    ],
    "gateway (its own `/metrics`)": [kinfer.producers.gateway.metrics],
}


def exposed_name(metric: MetricWrapperBase) -> str:
    (family,) = metric.describe()
    return f"{family.name}_total" if family.type == "counter" else family.name


def metric_row(metric: MetricWrapperBase) -> str:
    (family,) = metric.describe()
    labels = ", ".join(f"`{n}`" for n in metric._labelnames)  # no public accessor for a family's labels
    return f"| `{exposed_name(metric)}` | {family.type} | {labels} | {cell(family.documentation)} |"


def metrics_tables() -> str:
    """A table per process: name as scraped, type, labels, meaning."""
    out: list[str] = []
    for process, modules in EXPORTERS.items():
        found = [m for module in modules for m in vars(module).values() if isinstance(m, MetricWrapperBase)]
        out += [f"### {process[0].upper()}{process[1:]}", ""]
        out += ["| metric | type | labels | meaning |", "| --- | --- | --- | --- |"]
        out += [metric_row(m) for m in sorted(found, key=exposed_name)] + [""]
    return "\n".join(out).rstrip()


def rule_row(rule: dict[str, Any]) -> str:
    expr = " ".join(str(rule["expr"]).split())
    if "record" in rule:
        return f"| `{rule['record']}` | recording | | `{expr}` |"
    notes = rule.get("annotations", {})
    action = rule.get("labels", {}).get("action")
    said = cell(notes.get("description") or notes.get("summary", ""))
    said += f" Action: `{action}`." if action else ""
    return f"| `{rule['alert']}` | alert, for {rule.get('for', '0s')} | {said} | `{expr}` |"


def rules_tables() -> str:
    """A table per rule group: each signal and alert with its expression."""
    out: list[str] = []
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        out += [
            f"### `{group['name']}`",
            "",
            "| rule | kind | what it says | expression |",
            "| --- | --- | --- | --- |",
        ]
        out += [rule_row(rule) for rule in group["rules"]] + [""]
    return "\n".join(out).rstrip()
