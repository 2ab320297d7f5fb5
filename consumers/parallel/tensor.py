"""Tensor parallelism: each layer's heads and MLP columns split over the ranks of a stage.

Column-parallel q/k/v (so the KV cache is sharded by head) and the MLP's first layer,
row-parallel output and second layer (one all-reduce each); embeddings, norms and the small
vocabulary head of kinfer-tiny stay replicated. Hugging Face models use the tensor-parallel
plan transformers ships with them (``tp_plan="auto"``), not one written again here.
"""

from __future__ import annotations

from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.tensor.parallel import (
    ColwiseParallel,
    ParallelStyle,
    RowwiseParallel,
    parallelize_module,
)

from kinfer.consumers.engine.tiny import TinyDecoder


def tiny_plan() -> dict[str, ParallelStyle]:
    """kinfer-tiny's plan, per block."""
    return {
        "q": ColwiseParallel(),
        "k": ColwiseParallel(),
        "v": ColwiseParallel(),
        "proj": RowwiseParallel(),
        "mlp.0": ColwiseParallel(),
        "mlp.2": RowwiseParallel(),
    }


def shard_tiny(model: TinyDecoder, mesh: DeviceMesh) -> None:
    """Replace each block's weights by this rank's shard, in place."""
    for block in model.blocks:
        parallelize_module(block, mesh, tiny_plan())
