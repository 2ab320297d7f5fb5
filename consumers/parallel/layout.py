"""How a model is split over T x P ranks, and whether a model admits that split. Pure."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelShape:
    """What a split depends on."""

    layers: int
    heads: int
    kv_heads: int


@dataclass(frozen=True)
class ParallelLayout:
    """``tensor`` ranks split each layer by heads; ``pipeline`` stages split the layers.
    Global rank r is stage r // tensor, tensor rank r % tensor (rank 0: stage 0, the worker)."""

    tensor: int = 1
    pipeline: int = 1
    split: tuple[int, ...] | None = None
    """Layers per stage; None = as even as possible, earlier stages taking the remainder."""

    @property
    def world_size(self) -> int:
        return self.tensor * self.pipeline

    @property
    def parallel(self) -> bool:
        return self.world_size > 1

    def stage_of(self, rank: int) -> int:
        return rank // self.tensor

    def tensor_rank_of(self, rank: int) -> int:
        return rank % self.tensor

    def rank_at(self, stage: int, tensor_rank: int) -> int:
        return stage * self.tensor + tensor_rank

    def stage_layers(self, layers: int) -> list[range]:
        """The contiguous layers of each stage."""
        counts = (
            list(self.split)
            if self.split
            else [
                layers // self.pipeline + (1 if s < layers % self.pipeline else 0)
                for s in range(self.pipeline)
            ]
        )
        starts = [sum(counts[:s]) for s in range(len(counts))]
        return [range(start, start + n) for start, n in zip(starts, counts, strict=True)]

    def check(self, shape: ModelShape, model: str) -> None:
        """Raise ValueError naming the numbers when ``model`` cannot be split this way."""
        if self.tensor < 1 or self.pipeline < 1:
            raise ValueError(
                f"tensor and pipeline parallel sizes must be >= 1, got {self.tensor} x {self.pipeline}"
            )
        for what, n in (("attention heads", shape.heads), ("KV heads", shape.kv_heads)):
            if n % self.tensor:
                fits = [t for t in range(1, n + 1) if shape.heads % t == 0 and shape.kv_heads % t == 0]
                raise ValueError(
                    f"--tensor-parallel {self.tensor} does not divide {model}'s {n} {what} "
                    f"({shape.heads} heads, {shape.kv_heads} KV heads): use one of {fits}"
                )
        if self.pipeline > shape.layers:
            raise ValueError(
                f"--pipeline-parallel {self.pipeline} is more stages than {model}'s {shape.layers} layers"
            )
        if self.split is not None:
            if len(self.split) != self.pipeline or any(n < 1 for n in self.split):
                split = list(self.split)
                raise ValueError(f"--pipeline-split {split} must give each of {self.pipeline} stages a layer")
            if sum(self.split) != shape.layers:
                covered = sum(self.split)
                raise ValueError(f"--pipeline-split covers {covered} layers; {model} has {shape.layers}")
