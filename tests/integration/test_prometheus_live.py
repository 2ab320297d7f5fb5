"""A real Prometheus (Debian's `prometheus`) scraping every kinfer process of a running
pipeline with the shipped rules: every recording rule returns data, and a forced burst of
server errors fires the error-rate alert.

The rules are `infra/prometheus/rules.yml` as shipped, except that each alert's `for:` is 0 s
(a test cannot wait the 5 minutes the design's thresholds are held for).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kinfer.infra.stack.process import free_port
from kinfer.producers import AsyncClient, InternalError, InvalidRequest
from kinfer.schemas import SamplingParams
from tests.integration.conftest import Pipeline, wait_for

RULES = Path(__file__).resolve().parents[2] / "infra" / "prometheus" / "rules.yml"


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[list[str]], str]]:
    """Starts Prometheus on the given scrape targets; returns its base URL. Always stopped."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus is missing: `make setup` installs Debian's prometheus package"
    started: list[subprocess.Popen[bytes]] = []

    def start(targets: list[str]) -> str:
        rules = re.sub(r"for: \S+", "for: 0s", RULES.read_text())
        (tmp_path / "rules.yml").write_text(rules)
        quoted = ", ".join(f'"{t}"' for t in targets)
        (tmp_path / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "rule_files: [rules.yml]\n"
            f"scrape_configs:\n  - job_name: kinfer\n    static_configs:\n      - targets: [{quoted}]\n"
        )
        port = free_port()
        with (tmp_path / "prometheus.log").open("wb") as log:
            started.append(
                subprocess.Popen(
                    [
                        binary,
                        f"--config.file={tmp_path / 'prometheus.yml'}",
                        f"--storage.tsdb.path={tmp_path / 'data'}",
                        f"--web.listen-address=127.0.0.1:{port}",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _ready(url), 60, "Prometheus to be ready")
        return url

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=30)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def query(url: str, expr: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", body
    return body["data"]["result"]  # type: ignore[no-any-return]


def firing(url: str) -> list[dict[str, Any]]:
    alerts = httpx.get(f"{url}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    return [a for a in alerts if a["state"] == "firing"]


@pytest.mark.slow
def test_every_signal_has_data_and_an_error_burst_fires_the_error_rate_alert(
    make_pipeline: Callable[[str], Pipeline], prefix: str, prometheus: Callable[[list[str]], str]
) -> None:
    pipeline = make_pipeline(prefix)
    ports = {"admission": free_port(), "tiny": free_port(), "broken": free_port()}
    fast = {"KINFER_WORKER__TELEMETRY_INTERVAL_S": "0.5"}
    pipeline.start("admission", "admission", "--metrics-port", str(ports["admission"]))
    pipeline.start("tiny", "worker", "--metrics-port", str(ports["tiny"]), env=fast)
    broken = {**fast, "KINFER_WORKER__MODEL": "fail"}  # same region and group: every answer it gives fails
    pipeline.start(
        "broken", "worker", "--metrics-port", str(ports["broken"]), "--worker-id", "broken-1", env=broken
    )
    url = prometheus([f"127.0.0.1:{port}" for port in ports.values()])
    wait_for(lambda: len(query(url, "up == 1")) == 3, 60, "Prometheus to scrape all three processes")

    async def traffic() -> dict[str, int]:
        seen = {"ok": 0, "internal": 0, "invalid": 0}
        async with AsyncClient(pipeline.services.settings(prefix).client_config(timeout_s=30)) as client:
            ends = time.monotonic() + 25
            sent = 0
            # Fewer calls than a breaker needs to judge a region (500): the failing worker's errors
            # must reach the alert, not open the region's breaker and send requests elsewhere.
            while time.monotonic() < ends and sent < 150:
                prompt = f"again {sent % 3}" if sent % 2 else f"new {sent}"  # repeats: cache hits
                try:
                    await client.generate(prompt, user=f"u{sent}", sampling=SamplingParams(max_tokens=4))
                    seen["ok"] += 1
                except InternalError:
                    seen["internal"] += 1
                if sent % 10 == 0:
                    with pytest.raises(InvalidRequest):  # over the tier's token budget: rejected
                        await client.generate("big", sampling=SamplingParams(max_tokens=8192))
                    seen["invalid"] += 1
                sent += 1
        return seen

    urls = [f"http://127.0.0.1:{port}/metrics" for port in ports.values()]
    live_view = subprocess.Popen(
        [sys.executable, "-m", "kinfer.infra.cli", "monitor", "--once", "--interval-s", "10"]
        + [arg for u in urls for arg in ("--url", u)],
        env={**os.environ, "COLUMNS": "160"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        seen = asyncio.run(traffic())
        shown, _ = live_view.communicate(timeout=60)
    finally:
        live_view.kill()
        live_view.wait()
    # `kinfer monitor` saw the same traffic through the same /metrics.
    assert live_view.returncode == 0, shown
    assert re.search(r"us-west\W+\d+\.\d\W+\d+ ms\W+\d+ ms\W+\d+%", shown), shown
    assert "cache hit" in shown and "rejected invalid_request" in shown, shown
    assert seen["ok"] and seen["internal"] and seen["invalid"], seen
    recorded = re.findall(r"record: (kinfer:\S+)", RULES.read_text())
    assert len(recorded) >= 9
    wait_for(lambda: all(query(url, rule) for rule in recorded), 30, "every recording rule to return data")
    errors = {
        r["metric"]["model"]: float(r["value"][1]) for r in query(url, "kinfer:worker_error_ratio:rate5m")
    }
    assert errors["fail"] == 1.0 and errors["kinfer-tiny"] == 0.0, errors

    def error_alert() -> list[dict[str, Any]]:
        return [a for a in firing(url) if a["labels"]["alertname"] == "KinferErrorRateHigh"]

    wait_for(lambda: bool(error_alert()), 30, "KinferErrorRateHigh to fire")
    (alert,) = error_alert()
    assert alert["labels"]["model"] == "fail" and alert["labels"]["action"] == "check_node_health"
