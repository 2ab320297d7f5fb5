"""Session fixtures: the real Kafka broker and Redis, on their own loopback ports.

They are started once per test session through the same code as `kinfer up`,
and stopped at the end. A service that cannot start fails the tests that need
it with the reason; nothing is skipped silently.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch

if TYPE_CHECKING:
    from kinfer.consumers.engine.llama_cpp import LlamaCppRunner

from kinfer.consumers.engine import load_runner
from kinfer.consumers.engine.torch_runner import TorchRunner
from kinfer.infra.models import CATALOG, DEFAULT_MODEL, ModelStore
from kinfer.infra.models.gguf import GgufType, ensure_gguf
from kinfer.infra.models.pull import ensure_local
from kinfer.infra.settings import KinferSettings
from kinfer.infra.stack.kafka import KafkaCluster
from kinfer.infra.stack.process import PORTS, free_port
from kinfer.infra.stack.redis import RedisConfig, RedisServer
from tests.processes import children

REPO = Path(__file__).resolve().parent.parent
JARS = REPO / ".kinfer" / "kafka" / "libs"
"""Shared with `make setup`, so the suite resolves the broker jars at most once."""
MODELS = REPO / ".kinfer" / "models"
"""Shared with `make setup` too: SmolLM2 is pulled and converted once."""
SUITE_MODEL = "kinfer-tiny"
"""What a worker serves in a test that names no model: fast, and its tokens are exact."""


@dataclass(frozen=True)
class Services:
    bootstrap: str
    redis_url: str
    state_dir: Path

    def settings(self, prefix: str, **overrides: object) -> KinferSettings:
        """Settings that point at the session's services as external ones."""
        return KinferSettings(
            bootstrap_servers=self.bootstrap,
            redis_url=self.redis_url,
            state_dir=self.state_dir,
            topic_prefix=prefix,
            **{"models_dir": MODELS, "worker": {"model": SUITE_MODEL}, **overrides},  # type: ignore[arg-type]
        )

    def env(self, prefix: str) -> dict[str, str]:
        """The same, as the KINFER_ environment of a child process."""
        return {
            "KINFER_BOOTSTRAP_SERVERS": self.bootstrap,
            "KINFER_REDIS_URL": self.redis_url,
            "KINFER_STATE_DIR": str(self.state_dir),
            "KINFER_TOPIC_PREFIX": prefix,
            "KINFER_MODELS_DIR": str(MODELS),
            "KINFER_WORKER__MODEL": SUITE_MODEL,
        }


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    state = tmp_path_factory.mktemp("stack")
    kafka = KafkaCluster.on_loopback(
        state / "kafka", port=free_port(), controller_port=free_port(), jars_dir=JARS
    )
    redis_server = RedisServer(RedisConfig(state_dir=state / "redis", port=free_port()))
    try:
        kafka.start(timeout_s=120)
        redis_server.start()
        yield Services(kafka.bootstrap, redis_server.config.url, state)
    finally:
        redis_server.stop()
        kafka.stop()


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct as `make setup` pulled it (pulled here if it did not)."""
    return Path(ensure_local(DEFAULT_MODEL, ModelStore(MODELS)))


@pytest.fixture(scope="session")
def smollm2(smollm2_dir: Path) -> TorchRunner:
    """One loaded copy of the real model, shared by every test that needs it."""
    runner = load_runner(str(smollm2_dir), device="cpu", served_name=DEFAULT_MODEL)
    assert isinstance(runner, TorchRunner)
    return runner


def smollm2_gguf(kind: GgufType = "F32") -> Path:
    """SmolLM2's GGUF of ``kind`` (F32: the torch engine's exact weights), made once."""
    return ensure_gguf(CATALOG[DEFAULT_MODEL], ModelStore(MODELS), kind)


@pytest.fixture(scope="session")
def smollm2_llama() -> LlamaCppRunner:
    """The same model on llama.cpp (F32: the same values as the torch engine's)."""
    from kinfer.consumers.engine.llama_cpp import LlamaCppRunner

    runner = load_runner(str(smollm2_gguf("F32")), engine="llama.cpp", served_name=DEFAULT_MODEL, threads=2)
    assert isinstance(runner, LlamaCppRunner)
    return runner


@pytest.fixture
def prefix() -> str:
    """A topic prefix of this test's own, so tests never see each other's records."""
    return f"t{uuid.uuid4().hex[:10]}"


def pytest_configure(config: pytest.Config) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1, ... under `make test`'s -n
    if worker:  # processes side by side pick ports from slices of their own
        PORTS.narrow(int(worker.removeprefix("gw")), int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
        # ... and compute with one thread each, as does every process they start: torch's
        # threads spin while they wait, and on a 2-core machine two test processes each
        # spinning two threads starve the stages the tests time.
        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)
    # Longest first: `make test` runs whole files in parallel processes (xdist's --dist loadfile,
    # taken in this order), so a file of minutes starts at once rather than ending the run alone.
    # The sort is stable: a file's tests keep their order (test_regions' last one relies on it).
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: (item.path not in slow_files, "integration" not in item.path.parts))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Tests never leave a process running: name any child of this pytest process still there
    (xdist's own workers aside)."""
    for pid, argv in children(os.getpid()).items():
        if not any("execnet" in arg or "xdist" in arg for arg in argv):
            print(f"\nleft behind: pid {pid}: {' '.join(argv)[:300]}", file=sys.__stderr__)
