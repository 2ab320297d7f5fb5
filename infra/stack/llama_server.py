"""llama.cpp's own OpenAI-compatible server (``llama-server``), for ``--engine openai``.

It is the binary `make setup` builds with llama-cpp-python (the same vendored llama.cpp, so
the same kernels as ``--engine llama.cpp``), installed beside the package's libraries. kinfer
starts it only for tests, benchmarks and ``kinfer engine-server``; a team's own vLLM, SGLang,
TGI or llama-server is started however they start it, and the worker is pointed at its URL.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import structlog

from kinfer.infra.errors import StartTimeout, ToolMissing
from kinfer.infra.stack.process import ManagedProcess, log_tail, require_free_ports

log = structlog.get_logger(__name__)


def llama_server_binary() -> tuple[Path, Path]:
    """(llama-server, the folder of the libraries it links): where the llama-cpp-python wheel
    that `make setup` builds puts them, at the top of site-packages."""
    try:
        import llama_cpp
    except ImportError as exc:
        raise ToolMissing("llama-cpp-python is not installed: run `make setup`") from exc
    site = Path(llama_cpp.__file__).resolve().parent.parent
    binary, libs = site / "bin" / "llama-server", site / "lib"
    if not binary.is_file():
        raise ToolMissing(
            f"{binary} is missing: llama-cpp-python was built without its server; run `make setup`"
        )
    return binary, libs


@dataclass(frozen=True)
class LlamaServerConfig:
    model: Path
    """The GGUF it serves."""
    state_dir: Path
    port: int = 18080
    parallel: int = 16
    """Slots decoding at once (llama-server's continuous batching)."""
    context: int = 16384
    """KV cells for all slots together (each slot gets context / parallel)."""
    threads: int | None = None
    alias: str | None = None
    """The model id its /v1/models lists (default: the file's name)."""
    api_key: str | None = None

    @property
    def url(self) -> str:
        """The OpenAI API root, what ``--engine-url`` takes."""
        return f"http://127.0.0.1:{self.port}/v1"

    def argv(self, binary: Path) -> list[str]:
        args = [str(binary), "--model", str(self.model), "--host", "127.0.0.1", "--port", str(self.port)]
        args += ["--parallel", str(self.parallel), "--ctx-size", str(self.context), "--cont-batching"]
        args += ["--no-webui", "--threads", str(self.threads or os.cpu_count() or 1)]
        if self.alias:
            args += ["--alias", self.alias]
        if self.api_key:
            args += ["--api-key", self.api_key]
        return args


class LlamaServer:
    def __init__(self, config: LlamaServerConfig) -> None:
        self.config = config
        state = config.state_dir
        self.process = ManagedProcess("llama-server", state / "llama-server.pid", state / "llama-server.log")

    def start(self, *, timeout_s: float = 120.0) -> None:
        """Start it and wait until /health says the model is loaded."""
        binary, libs = llama_server_binary()
        require_free_ports({"llama-server --port": self.config.port})
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "LD_LIBRARY_PATH": f"{libs}:{os.environ.get('LD_LIBRARY_PATH', '')}"}
        self.process.start(self.config.argv(binary), env=env)
        deadline = time.monotonic() + timeout_s
        while not self.healthy():
            if self.process.exited():
                raise StartTimeout(f"llama-server exited at start:\n{log_tail(self.process.log_file)}")
            if time.monotonic() > deadline:
                self.stop()
                raise StartTimeout(
                    f"llama-server not healthy after {timeout_s:.0f}s:\n{log_tail(self.process.log_file)}"
                )
            time.sleep(0.2)
        log.info("llama_server.ready", url=self.config.url, model=str(self.config.model))

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.config.port}/health", timeout=2) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> bool:
        return self.process.stop(timeout_s=10)
