"""The torch runner: device, dtype and quantization around a :class:`DecodeBatch` over kinfer's
own padded KV cache."""

from __future__ import annotations

import warnings

import torch

from kinfer.consumers.engine.decode_batch import DecodeBatch
from kinfer.consumers.engine.local_runner import LocalRunner
from kinfer.consumers.engine.model_api import CausalLM, TextCodec
from kinfer.consumers.engine.padded_cache import PaddedCache
from kinfer.consumers.engine.tokenizer import ByteTokenizer


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 quantization of every nn.Linear: int8 weights with a scale per output
    channel (on SmolLM2 that costs less perplexity than one scale per tensor), activations
    quantized on the fly."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():
        # torch points to torchao for new code; this API still works and needs no extra package.
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=UserWarning)
        spec = {torch.nn.Linear: per_channel_dynamic_qconfig}
        quantized: torch.nn.Module = quantize_dynamic(model, spec, dtype=torch.qint8)  # type: ignore[no-untyped-call]
    return quantized


def tensor_bytes(value: object) -> int:
    """Bytes of a state-dict value as this process holds it: packed int8 weights included,
    a tensor-parallel shard (DTensor) counted by its local part."""
    value = _local(value)
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, tuple | list):
        return sum(tensor_bytes(v) for v in value)
    return 0


class TorchRunner(LocalRunner):
    """A :class:`ModelRunner` over any :class:`CausalLM` module and its tokenizer."""

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        name: str,
        device: torch.device,
        dtype: torch.dtype,
        tokenizer: TextCodec | None = None,
    ) -> None:
        self.module = model.to(device=device, dtype=dtype).eval()
        self.model: CausalLM = self.module  # type: ignore[assignment]
        self.device = device
        self.tokenizer: TextCodec = tokenizer or ByteTokenizer()
        self._name = name

    @property
    def max_context(self) -> int:
        return self.model.max_context

    def parameter_bytes(self) -> int:
        """Memory of the weights as held (int8 packed weights count one byte each; tied
        weights, like an output layer sharing the embedding, count once)."""
        seen: set[int] = set()
        total = 0
        for value in map(_local, self.module.state_dict().values()):
            if isinstance(value, torch.Tensor):
                if value.untyped_storage().data_ptr() in seen:
                    continue
                seen.add(value.untyped_storage().data_ptr())
            total += tensor_bytes(value)
        return total

    def batch(self) -> DecodeBatch[int]:
        """An empty continuous batch over this runner's model."""
        return DecodeBatch(
            PaddedCache(self.model, self.tokenizer.pad_id, self.device), self.tokenizer, self.device
        )


def _local(value: object) -> object:
    """The part of a sharded tensor this rank holds."""
    to_local = getattr(value, "to_local", None)
    return to_local() if callable(to_local) else value
