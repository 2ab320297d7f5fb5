"""Model execution. Torch is imported only when a torch model is loaded."""

from __future__ import annotations

from kinfer.consumers.engine.runner import GenerationInput, GenerationOutput, ModelRunner

__all__ = ["GenerationInput", "GenerationOutput", "ModelRunner", "load_runner"]

_DTYPES = ("float32", "bfloat16", "float16")


def load_runner(
    model: str,
    *,
    device: str = "auto",
    dtype: str = "float32",
    quantize: str = "none",
    served_name: str | None = None,
) -> ModelRunner:
    """The runner for ``model``: kinfer-tiny, echo, fail, or a local Hugging Face directory.

    ``served_name``: what answers and heartbeats call the model (default: its name, or
    the directory's name).

    ``dtype``: float32 or bfloat16 on CPU; float16 or bfloat16 (or float32) on CUDA.
    ``quantize="int8"``: dynamic int8 quantization of the linear layers (CPU only).
    """
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
            raise ValueError(f"quantize must be none or int8, got {quantize!r}")
        if quantize == "int8" and (where.type != "cpu" or dtype != "float32"):
            raise ValueError("int8 dynamic quantization runs on the CPU from float32 weights")
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
    raise ValueError(
        f"unknown model {model!r}: serve kinfer-tiny, a local Hugging Face directory, "
        "or the test models echo and fail"
    )


def _is_local_hf(name: str) -> bool:
    from kinfer.consumers.engine.hf import is_hf_directory

    return is_hf_directory(name)
