"""Model execution behind the :class:`ModelRunner` seam: kinfer's torch engine, llama.cpp in the
process, or a remote OpenAI-compatible engine server. Each engine's heavy import happens only
when it is loaded."""

from __future__ import annotations

from kinfer.consumers.engine.runner import GenerationInput, GenerationOutput, ModelRunner

__all__ = ["GenerationInput", "GenerationOutput", "ModelRunner", "load_runner"]

_DTYPES = ("float32", "bfloat16", "float16")


def load_runner(
    model: str,
    *,
    engine: str = "torch",
    device: str = "auto",
    dtype: str = "float32",
    quantize: str = "none",
    served_name: str | None = None,
    threads: int | None = None,
    max_batch_tokens: int = 4096,
    max_batch_requests: int = 32,
    engine_url: str | None = None,
    engine_api_key: str | None = None,
) -> ModelRunner:
    """The runner for ``model`` on ``engine`` (heavy imports happen here, per engine).

    ``torch``: kinfer-tiny, echo, fail, or a local Hugging Face directory; ``dtype`` float32
    or bfloat16 on CPU, float16 or bfloat16 (or float32) on CUDA; ``quantize="int8"``: dynamic
    int8 quantization of the linear layers (CPU only).
    ``llama.cpp``: a GGUF file, its KV cache sized by the batch limits.
    ``openai``: an OpenAI-compatible engine server at ``engine_url`` serving ``model``.

    ``served_name``: what answers and heartbeats call the model (default: its name, or the
    file's or directory's name). ``threads``: CPU threads to compute with (default: all).
    """
    if engine == "llama.cpp":
        from kinfer.consumers.engine.llama_cpp import LlamaSizing, load_llama

        sizing = LlamaSizing(max_batch_tokens, max_batch_requests, threads or _cores())
        return load_llama(model, sizing, served_name=served_name)
    if engine == "openai":
        from kinfer.consumers.engine.remote import RemoteConfig, connect

        if engine_url is None:
            raise ValueError("the openai engine needs the engine server's URL")
        remote = RemoteConfig(engine_url, engine_api_key, max_batch_requests)
        return connect(remote, model, served_name=served_name)
    if engine != "torch":
        raise ValueError(f"unknown engine {engine!r}: torch, llama.cpp or openai")
    if model in ("echo", "fail"):
        from kinfer.consumers.engine.echo import EchoRunner, FailingRunner

        return EchoRunner() if model == "echo" else FailingRunner()
    if model == "kinfer-tiny" or _is_local_hf(model):
        import torch

        from kinfer.consumers.engine.tiny import build_tiny
        from kinfer.consumers.engine.torch_runner import TorchRunner, quantize_int8, resolve_device

        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
        where = resolve_device(device)
        if dtype == "float16" and where.type == "cpu":
            raise ValueError("float16 is for CUDA; on the CPU use float32 or bfloat16")
        if quantize not in ("none", "int8"):
            raise ValueError(f"quantize must be none or int8 on the torch engine, got {quantize!r}")
        if quantize == "int8" and (where.type != "cpu" or dtype != "float32"):
            raise ValueError("int8 dynamic quantization runs on the CPU from float32 weights")
        if threads is not None:
            torch.set_num_threads(threads)
        if model == "kinfer-tiny":
            net: torch.nn.Module = build_tiny()
            name, codec = model, None
        else:
            from kinfer.consumers.engine.hf import load_hf

            net, codec, name = load_hf(model)
        if quantize == "int8":
            net = quantize_int8(net)
        return TorchRunner(
            net, name=served_name or name, device=where, dtype=getattr(torch, dtype), tokenizer=codec
        )
    hint = " (a .gguf file runs on --engine llama.cpp)" if model.endswith(".gguf") else ""
    raise ValueError(
        f"unknown model {model!r}: serve kinfer-tiny, a local Hugging Face directory, "
        f"or the test models echo and fail{hint}"
    )


def _cores() -> int:
    """Cores this process may run on (its affinity, not the machine's count)."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _is_local_hf(name: str) -> bool:
    from kinfer.consumers.engine.hf import is_hf_directory

    return is_hf_directory(name)
