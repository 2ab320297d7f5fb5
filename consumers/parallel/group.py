"""Joining a rank group with torch.distributed: gloo on the CPU, NCCL on CUDA."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import structlog
import torch
import torch.distributed as dist
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh

from kinfer.consumers.engine.runner import RankGroupLost
from kinfer.consumers.parallel.layout import ParallelLayout

log = structlog.get_logger(__name__)
T = TypeVar("T")

IDLE_TIMEOUT = timedelta(days=7)
"""How long a follower waits for rank 0's next command: as long as the worker may idle. A
rank that dies is noticed at once anyway (its connections close); this only bounds a hang."""


@dataclass(frozen=True)
class RankAddress:
    """Where this rank is in its group, torchrun-style."""

    rank: int
    master_addr: str
    master_port: int


@dataclass
class RankGroup:
    layout: ParallelLayout
    rank: int
    device: torch.device
    mesh: DeviceMesh
    """Dimensions ("pp", "tp"): stages by tensor ranks."""
    control: dist.ProcessGroup
    """Commands from rank 0 (gloo, CPU objects); waits as long as the worker idles."""
    cpu: dist.ProcessGroup
    """Each step's picked tokens (gloo, CPU tensors), with the collective timeout."""

    @property
    def stage(self) -> int:
        return self.layout.stage_of(self.rank)

    @property
    def tensor_rank(self) -> int:
        return self.layout.tensor_rank_of(self.rank)

    @property
    def is_leader(self) -> bool:
        return self.rank == 0

    @property
    def tp_mesh(self) -> DeviceMesh:
        return self.mesh["tp"]

    def neighbour(self, stage: int) -> int:
        """The rank at ``stage`` holding the same tensor shard as this one."""
        return self.layout.rank_at(stage, self.tensor_rank)

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


def join_group(
    layout: ParallelLayout, address: RankAddress, device: torch.device, timeout_s: float
) -> RankGroup:
    """Meet the other ranks at ``master_addr:master_port``; every collective of the model then
    fails (RankGroupLost) when a peer has not answered within ``timeout_s``."""
    backend = "nccl" if device.type == "cuda" else "gloo"
    timeout = timedelta(seconds=timeout_s)
    try:
        dist.init_process_group(
            backend,
            init_method=f"tcp://{address.master_addr}:{address.master_port}",
            rank=address.rank,
            world_size=layout.world_size,
            timeout=timeout,
        )
        control = dist.new_group(backend="gloo", timeout=IDLE_TIMEOUT)
        cpu = dist.new_group(backend="gloo", timeout=timeout)
        mesh = init_device_mesh(device.type, (layout.pipeline, layout.tensor), mesh_dim_names=("pp", "tp"))
    except (RuntimeError, ValueError) as exc:  # DistBackendError, DistNetworkError, timeouts
        raise RankGroupLost(f"rank {address.rank} could not join its group: {exc}") from exc
    assert isinstance(control, dist.ProcessGroup) and isinstance(cpu, dist.ProcessGroup)
    group = RankGroup(layout, address.rank, device, mesh, control, cpu)
    log.info(
        "ranks.joined", rank=group.rank, stage=group.stage, tensor_rank=group.tensor_rank, backend=backend
    )
    return group


def guard(call: Callable[[], T]) -> T:
    """A peer that died or hung: the group is lost, not the request being computed."""
    try:
        return call()
    except RuntimeError as exc:  # gloo / NCCL errors and timeouts are RuntimeErrors
        raise RankGroupLost(f"a rank of this worker's group failed: {exc}") from exc
