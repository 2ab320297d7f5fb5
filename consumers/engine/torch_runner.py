"""Batched generation with torch: padded prefill, then a KV-cached decode loop."""

from __future__ import annotations

import codecs
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch

from consumers.engine.runner import GenerationInput, GenerationOutput, TokenSink
from consumers.engine.sampling import make_generator, pick
from consumers.engine.tiny import KVCache, TinyDecoder
from consumers.engine.tokenizer import ByteTokenizer


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def quantize_int8(model: TinyDecoder) -> TinyDecoder:
    """Dynamic int8 quantization of every nn.Linear (weights int8, activations float)."""
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        # torch points to torchao for new code; this API still works and needs no extra package.
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=UserWarning)
        quantized: TinyDecoder = quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)  # type: ignore[no-untyped-call]
    return quantized


def tensor_bytes(value: object) -> int:
    """Bytes of a state-dict value, packed int8 weights included."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, tuple | list):
        return sum(tensor_bytes(v) for v in value)
    return 0


@dataclass
class _Row:
    """Decoding state of one sequence in the batch."""

    item: GenerationInput
    prompt_len: int
    gen: torch.Generator | None
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    finish: Literal["stop", "length"] | None = None
    decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace")
    )
    streamed: int = 0
    """Characters of ``text`` already handed to the sink."""

    @property
    def holdback(self) -> int:
        """Trailing characters that may still turn out to start a stop sequence."""
        return max((len(s) for s in self.item.sampling.stop), default=1) - 1


class TorchRunner:
    """A :class:`ModelRunner` for decoder models with kinfer-tiny's forward signature."""

    def __init__(self, model: TinyDecoder, *, name: str, device: torch.device, dtype: torch.dtype) -> None:
        self.model = model.to(device=device, dtype=dtype)
        self.device = device
        self.tokenizer = ByteTokenizer()
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    @property
    def max_context(self) -> int:
        return self.model.cfg.max_context

    def count_tokens(self, prompt: str) -> int:
        return len(self.tokenizer.encode(prompt))

    def parameter_bytes(self) -> int:
        """Memory of the weights as held (int8 packed weights count one byte each)."""
        return sum(tensor_bytes(v) for v in self.model.state_dict().values())

    @torch.inference_mode()
    def generate(
        self, batch: Sequence[GenerationInput], on_text: TokenSink | None = None
    ) -> list[GenerationOutput]:
        if not batch:
            return []
        prompts = [self.tokenizer.encode(item.prompt) for item in batch]
        rows = [
            _Row(item, len(ids), make_generator(item.sampling, self.device))
            for item, ids in zip(batch, prompts, strict=True)
        ]
        ids, key_mask, positions = self._left_pad(prompts)
        logits, cache = self.model(ids, key_mask, positions)
        last_pos = positions[:, -1]
        for _ in range(max(item.sampling.max_tokens for item in batch)):
            step = self._step(rows, logits)
            if on_text is not None:
                self._stream(rows, on_text)
            if all(row.finish for row in rows):
                break
            key_mask = torch.cat([key_mask, torch.ones_like(key_mask[:, :1])], dim=1)
            last_pos = last_pos + 1
            logits, cache = self._decode(step, key_mask, last_pos, cache)
        return [self._output(row) for row in rows]

    def _left_pad(self, prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.tokenizer.pad_id, dtype=torch.long)
        key_mask = torch.zeros((len(prompts), width), dtype=torch.bool)
        for i, prompt in enumerate(prompts):
            ids[i, width - len(prompt) :] = torch.tensor(prompt)
            key_mask[i, width - len(prompt) :] = True
        positions = (key_mask.long().cumsum(dim=1) - 1).clamp(min=0)
        return ids.to(self.device), key_mask.to(self.device), positions.to(self.device)

    def _decode(
        self, step: list[int], key_mask: torch.Tensor, last_pos: torch.Tensor, cache: KVCache
    ) -> tuple[torch.Tensor, KVCache]:
        ids = torch.tensor(step, device=self.device).unsqueeze(1)
        return self.model(ids, key_mask, last_pos.unsqueeze(1), cache)  # type: ignore[no-any-return]

    def _step(self, rows: list[_Row], logits: torch.Tensor) -> list[int]:
        """Pick one token per row, update finish states; finished rows feed padding."""
        step: list[int] = []
        cpu_logits = logits.float().cpu()
        for i, row in enumerate(rows):
            if row.finish:
                step.append(self.tokenizer.pad_id)
                continue
            token = pick(cpu_logits[i], row.item.sampling, row.gen)
            step.append(token)
            self._advance(row, token)
        return step

    @staticmethod
    def _stream(rows: list[_Row], on_text: TokenSink) -> None:
        for i, row in enumerate(rows):
            final = len(row.text) if row.finish else max(row.streamed, len(row.text) - row.holdback)
            if final > row.streamed:
                on_text(i, row.text[row.streamed : final])
                row.streamed = final

    def _advance(self, row: _Row, token: int) -> None:
        sampling = row.item.sampling
        if token == self.tokenizer.eos_id:
            row.finish = "stop"
            return
        row.tokens.append(token)
        row.text += row.decoder.decode(bytes([token]) if token < 256 else b"")
        for stop in sampling.stop:
            cut = row.text.find(stop)
            if cut >= 0:
                row.text = row.text[:cut]
                row.finish = "stop"
                return
        if len(row.tokens) >= sampling.max_tokens:
            row.finish = "length"

    def _output(self, row: _Row) -> GenerationOutput:
        return GenerationOutput(
            text=row.text,
            finish_reason=row.finish or "length",
            prompt_tokens=row.prompt_len,
            completion_tokens=len(row.tokens),
        )
