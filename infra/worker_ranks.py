"""`kinfer worker` as one process, or as a group of ranks (tensor x pipeline parallel).

Ranks start in one of two ways: `kinfer worker --tensor-parallel 2` starts the other ranks
on this host itself (same arguments, plus `--rank`), or each rank is started on its host
with `--rank` (or by torchrun, whose RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT are
read). Either way rank 0 runs the Kafka loop; the group lives and dies as one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping

import structlog

from kinfer.consumers.config import WorkerConfig
from kinfer.consumers.engine import ModelRunner
from kinfer.infra.stack.process import free_port

log = structlog.get_logger(__name__)

STOP_GRACE_S = 30.0


def torchrun_overrides(config: WorkerConfig, environ: Mapping[str, str]) -> dict[str, object]:
    """torchrun's variables, where the flags did not say otherwise."""
    if "RANK" not in environ or config.rank is not None:
        return {}
    world = int(environ.get("WORLD_SIZE", "1"))
    if world != config.layout.world_size:
        raise ValueError(
            f"torchrun started {world} ranks; --tensor-parallel {config.tensor_parallel} x "
            f"--pipeline-parallel {config.pipeline_parallel} needs {config.layout.world_size}"
        )
    return {
        "rank": int(environ["RANK"]),
        "master_addr": environ.get("MASTER_ADDR", config.master_addr),
        "master_port": int(environ.get("MASTER_PORT", config.master_port)),
    }


def serve(config: WorkerConfig, model: str, served_name: str | None, *, standby: bool) -> None:
    """Run the worker (rank 0) or a follower rank until stopped; raises when the group fails."""
    import torch

    from kinfer.consumers import metrics
    from kinfer.consumers.engine.torch_runner import resolve_device
    from kinfer.consumers.parallel.channel import Channel
    from kinfer.consumers.parallel.group import RankAddress, join_group
    from kinfer.consumers.parallel.replica import ParallelRunner, follow, gather_sizes
    from kinfer.consumers.parallel.shard import check_split, load_shard

    layout = config.layout
    check_split(model, layout)  # before any rank starts
    if config.quantize != "none":
        raise ValueError("int8 quantization and parallel ranks do not combine yet")
    followers: list[subprocess.Popen[bytes]] = []
    stopping = threading.Event()
    if config.rank is None:  # rank 0 of a group on this host: start the others
        port = config.master_port or free_port()
        followers = start_followers(layout.world_size, port)
        watch(followers, stopping)  # from the start: a rank lost while joining stops rank 0 too
        address = RankAddress(0, "127.0.0.1", port)
    else:
        address = RankAddress(config.rank, config.master_addr, config.master_port)
        # Rank 0 drives the group: a signal to the whole process group (Ctrl-C, a pod's stop)
        # drains rank 0, which then stops the rest; a follower exits on its own only when
        # the group fails.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    device = resolve_device(config.device)
    if device.type == "cpu":
        share_cores(int(os.environ.get("LOCAL_WORLD_SIZE", layout.world_size)))
    if device.type == "cuda":
        device = torch.device(
            "cuda", int(os.environ.get("LOCAL_RANK", address.rank)) % torch.cuda.device_count()
        )
    group = join_group(layout, address, device, config.collective_timeout_s)
    local = load_shard(model, group, dtype=getattr(torch, config.dtype), served_name=served_name)
    sizes = gather_sizes(group, local.parameter_bytes())
    channel = Channel(group)
    if not group.is_leader:
        follow(local, channel)
        group.close()
        return
    log.info("ranks.parameter_bytes", per_rank=sizes)
    for rank, size in enumerate(sizes):
        metrics.RANK_PARAMETER_BYTES.labels(str(rank)).set(size)
    runner = ParallelRunner(local, channel)
    try:
        run_worker(config, runner, standby=standby)
    except BaseException:
        stopping.set()
        for proc in followers:  # a failed group: nothing left to drain
            proc.kill()
        raise
    stopping.set()
    runner.stop()
    stop_followers(followers)
    group.close()


def run_worker(config: WorkerConfig, runner: ModelRunner, *, standby: bool) -> None:
    from kinfer.consumers.worker import InferenceWorker

    inference = InferenceWorker(config, runner)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: inference.stop())
    inference.run(standby=standby)


def start_followers(world_size: int, port: int) -> list[subprocess.Popen[bytes]]:
    """Ranks 1..world-1 on this host: this command again, with its rank and rendezvous port."""
    argv = [sys.executable, "-m", "kinfer.infra.cli", *sys.argv[1:]]
    env = {**os.environ, "LOCAL_WORLD_SIZE": str(world_size)}  # torchrun's name: ranks on this host
    return [
        subprocess.Popen([*argv, "--rank", str(rank), "--master-port", str(port)], env=env)
        for rank in range(1, world_size)
    ]


def share_cores(ranks_here: int) -> None:
    """CPU ranks on one host split its cores instead of each taking all of them (which
    oversubscribes the cores and makes every collective wait on a descheduled rank)."""
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, ranks_here)))


def watch(followers: list[subprocess.Popen[bytes]], stopping: threading.Event) -> None:
    """A follower that dies takes the group down at once, not at the next request: rank 0
    exits non-zero (its open transaction is aborted), and Kafka moves its partitions on."""

    def look() -> None:
        while not stopping.wait(0.2):
            for rank, proc in enumerate(followers, start=1):
                if proc.poll() is not None and not stopping.is_set():
                    log.error("ranks.follower_died", rank=rank, exit_code=proc.returncode)
                    for other in followers:
                        other.kill()
                    os._exit(70)

    if followers:
        threading.Thread(target=look, name="kinfer-ranks-watch", daemon=True).start()


def stop_followers(followers: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + STOP_GRACE_S
    for proc in followers:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
