"""Which engine a worker runs and which file it loads: ``--engine auto`` made concrete, and a
catalogue name turned into its pulled folder or GGUF. Shared by `kinfer worker` and the demo."""

from __future__ import annotations

import importlib.util

from kinfer.consumers.config import WorkerConfig
from kinfer.infra.models import CATALOG, ModelStore
from kinfer.infra.models.gguf import ensure_gguf_local
from kinfer.infra.models.pull import ensure_local


def model_for(config: WorkerConfig, store: ModelStore) -> str:
    """What the engine loads for the configured model: a catalogue model pulled (its Hugging
    Face folder, or for llama.cpp its GGUF of the wanted type); an engine server's id as is."""
    if config.engine == "openai":
        return config.model
    if config.engine == "llama.cpp":
        return ensure_gguf_local(config.model, store, config.dtype, config.quantize)
    return ensure_local(config.model, store)


def engine_for(config: WorkerConfig) -> WorkerConfig:
    """``auto`` made concrete: llama.cpp (when built) for a catalogue model, which has GGUFs, or a
    .gguf file; kinfer's torch engine for the rest (kinfer-tiny, Hugging Face folders, ranks)."""
    if config.engine != "auto":
        return config
    spec = CATALOG.get(config.model)
    gguf = (spec is not None and not spec.builtin) or config.model.endswith(".gguf")
    llama = gguf and not config.layout.parallel and importlib.util.find_spec("llama_cpp") is not None
    return config.model_copy(update={"engine": "llama.cpp" if llama else "torch"})
