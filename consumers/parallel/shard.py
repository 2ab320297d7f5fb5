"""This rank's part of a model: its tensor shard of its stage's layers, as a runner."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from kinfer.consumers.engine.hf import is_hf_directory, load_hf
from kinfer.consumers.engine.tiny import TinyConfig, build_tiny
from kinfer.consumers.engine.torch_runner import TorchRunner
from kinfer.consumers.parallel.group import RankGroup
from kinfer.consumers.parallel.layout import ModelShape, ParallelLayout
from kinfer.consumers.parallel.pipeline import LlamaStage, TinyStage
from kinfer.consumers.parallel.tensor import shard_tiny


def model_shape(model: str) -> ModelShape:
    """Layers and heads of a servable model, read without loading it."""
    if model == "kinfer-tiny":
        cfg = TinyConfig()
        return ModelShape(cfg.n_layers, cfg.n_heads, cfg.n_heads)
    if is_hf_directory(model):
        config = json.loads((Path(model) / "config.json").read_text())
        heads = int(config["num_attention_heads"])
        return ModelShape(
            int(config["num_hidden_layers"]), heads, int(config.get("num_key_value_heads") or heads)
        )
    raise ValueError(f"{model!r} cannot be split over ranks: serve kinfer-tiny or a Hugging Face directory")


LLAMA_FAMILY = frozenset({"llama", "mistral", "qwen2", "qwen3"})
"""Hugging Face architectures whose layers :class:`LlamaStage` runs (embed_tokens, layers,
norm, lm_head, rotary embeddings)."""


def check_split(model: str, layout: ParallelLayout) -> None:
    """Before any rank starts: a split the model admits, or a ValueError naming the numbers."""
    layout.check(model_shape(model), model)
    if layout.pipeline > 1 and model != "kinfer-tiny":
        kind = json.loads((Path(model) / "config.json").read_text()).get("model_type")
        if kind not in LLAMA_FAMILY:
            raise ValueError(
                f"pipeline stages run kinfer-tiny and the Llama family ({', '.join(sorted(LLAMA_FAMILY))}); "
                f"{model} is {kind!r}: serve it with --tensor-parallel (transformers' own plan)"
            )


def load_shard(
    model: str, group: RankGroup, *, dtype: torch.dtype, served_name: str | None = None
) -> TorchRunner:
    layout = group.layout
    if model == "kinfer-tiny":
        net = build_tiny()
        if layout.tensor > 1:
            shard_tiny(net, group.tp_mesh)
        module: torch.nn.Module = net
        if layout.pipeline > 1:
            module = TinyStage(net, layout.stage_layers(net.cfg.n_layers)[group.stage], group)
        return TorchRunner(module, name=served_name or model, device=group.device, dtype=dtype)
    hf, codec, name = load_hf(model, tp_mesh=group.tp_mesh if layout.tensor > 1 else None)
    module = hf
    if layout.pipeline > 1:
        layers = layout.stage_layers(model_shape(model).layers)[group.stage]
        module = LlamaStage(hf, layers, group)  # the other stages' layers are freed with hf
    return TorchRunner(module, name=served_name or name, device=group.device, dtype=dtype, tokenizer=codec)
