"""The stages `kinfer up` runs in the background: admission, a worker, the gateway.

Each runs under ``infra.supervise`` (restarted when it crashes), detached, with a
pid file and a log under ``<state_dir>/stages/``. They are started in flow order
and stopped in reverse, so nothing in flight is left without a consumer.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from kinfer.infra.settings import KinferSettings
from kinfer.infra.stack.process import ManagedProcess
from kinfer.infra.stack.stages import kinfer_argv

STAGES = ("admission", "worker", "gateway")
"""Start order; `kinfer down` stops them in reverse."""


@dataclass(frozen=True)
class StageStatus:
    name: str
    pid: int | None
    uptime_s: float | None
    log_file: Path

    @property
    def state(self) -> str:
        return "running" if self.pid is not None else "stopped"


class BackgroundStage:
    """One supervised stage, found again through its pid file."""

    def __init__(self, state_dir: Path, name: str) -> None:
        self.name = name
        folder = state_dir / "stages"
        self.process = ManagedProcess(name, folder / f"{name}.pid", folder / f"{name}.log")

    @property
    def log_file(self) -> Path:
        return self.process.log_file

    def start(self, args: list[str], env: dict[str, str]) -> int:
        """Start it unless it runs; returns its (supervisor's) pid."""
        if (pid := self.process.pid()) is not None:
            return pid
        self.process.pid_file.parent.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "kinfer.infra.supervise", self.name, "--", *kinfer_argv(*args)]
        return self.process.start(argv, {**os.environ, **env})

    def stop(self, timeout_s: float = 60.0) -> bool:
        return self.process.stop(timeout_s)

    def status(self) -> StageStatus:
        pid = self.process.pid()
        uptime = time.time() - self.process.pid_file.stat().st_mtime if pid is not None else None
        return StageStatus(self.name, pid, uptime, self.log_file)


def stages(settings: KinferSettings) -> list[BackgroundStage]:
    """The stages `up` runs here: all of them, or on linked clusters admission and a worker per
    region and the gateway in the hub only (a gateway elsewhere: `KINFER_REGION=... kinfer gateway`)."""
    names = STAGES if settings.region == settings.hub else tuple(n for n in STAGES if n != "gateway")
    return [BackgroundStage(settings.state_dir, name) for name in names]


def dev_api_key(settings: KinferSettings) -> str:
    """The gateway's development key for the CLI's tenant, made once and kept in the state dir."""
    path = settings.state_dir / "gateway" / "dev-api-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"sk-kinfer-dev-{secrets.token_urlsafe(18)}\n")
        path.chmod(0o600)
    return path.read_text().strip()


def stage_env(settings: KinferSettings) -> dict[str, str]:
    """What the stages need beyond the caller's own KINFER_ environment."""
    # The root state dir and the region: each stage finds its region's services from them.
    env = {"KINFER_STATE_DIR": str(settings.state_root), "KINFER_REGION": settings.region}
    if not settings.gateway.api_keys:
        env["KINFER_GATEWAY__API_KEYS"] = json.dumps({settings.client.tenant: dev_api_key(settings)})
    return env


def start_all(settings: KinferSettings) -> list[StageStatus]:
    env = stage_env(settings)
    for stage in stages(settings):
        stage.start([stage.name], env)
    return [stage.status() for stage in stages(settings)]


def stop_all(settings: KinferSettings) -> list[str]:
    """Stop every running stage, last in the flow first; returns the names stopped."""
    return [stage.name for stage in reversed(stages(settings)) if stage.stop()]


def wait_until_up(settings: KinferSettings, timeout_s: float) -> float:
    """Until admission and a worker are in their groups and the gateway answers; seconds taken.

    A stage whose supervisor gave up fails at once, with the tail of its log.
    """
    import httpx

    from kinfer.infra.errors import StartTimeout
    from kinfer.infra.stack.process import log_tail
    from kinfer.producers.readiness import NothingServing, check_consumers
    from kinfer.schemas import TopicNames

    started = time.monotonic()
    health = f"http://{settings.gateway.host}:{settings.gateway.port}/healthz"
    gateway = any(stage.name == "gateway" for stage in stages(settings))
    waiting_for = "admission and the worker"
    while time.monotonic() - started < timeout_s:
        for stage in stages(settings):
            if stage.process.pid() is None:
                tail = log_tail(stage.log_file)
                raise StartTimeout(f"{stage.name} stopped while starting; its log:\n{tail}")
        try:
            check_consumers(settings.kafka, TopicNames(settings.topic_prefix))
            waiting_for = "the gateway"
            if not gateway or httpx.get(health, timeout=1.0).status_code == 200:
                return time.monotonic() - started
        except (NothingServing, httpx.HTTPError):
            pass
        time.sleep(0.5)
    tails = "\n".join(f"--- {s.name}:\n{log_tail(s.log_file, 10)}" for s in stages(settings))
    raise StartTimeout(f"waited {timeout_s:.0f}s for {waiting_for}; logs:\n{tails}")
