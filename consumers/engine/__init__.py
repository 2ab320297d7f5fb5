"""Model execution. Torch is imported only when a torch model is loaded."""

from __future__ import annotations

from consumers.engine.runner import GenerationInput, GenerationOutput, ModelRunner

__all__ = ["GenerationInput", "GenerationOutput", "ModelRunner", "load_runner"]

_DTYPES = ("float32", "bfloat16", "float16")


def load_runner(model: str, *, device: str = "auto", dtype: str = "float32") -> ModelRunner:
    """The runner for a served model name."""
    if model in ("echo", "fail"):
        from consumers.engine.echo import EchoRunner, FailingRunner

        return EchoRunner() if model == "echo" else FailingRunner()
    if model == "kinfer-tiny":
        import torch

        from consumers.engine.tiny import build_tiny
        from consumers.engine.torch_runner import TorchRunner, resolve_device

        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
        return TorchRunner(
            build_tiny(), name=model, device=resolve_device(device), dtype=getattr(torch, dtype)
        )
    raise ValueError(f"unknown model {model!r}; served models: kinfer-tiny, echo, fail")
