"""Local Hugging Face causal-LM directories (config, safetensors, tokenizer) via
``transformers``, an optional extra: ``pip install 'kinfer[hf]'``.

Only local files are read (``local_files_only``): kinfer never downloads at run
time. The model runs in the same continuous batch as kinfer-tiny: left-padded
input, explicit positions and a per-layer KV cache converted to and from
transformers' ``DynamicCache``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kinfer.consumers.engine.chat_template import render_plain
from kinfer.consumers.engine.constraints import GrammarTokenizer, hf_tokenizer
from kinfer.consumers.engine.model_api import KVCache
from kinfer.schemas import ChatMessage


def is_hf_directory(name: str) -> bool:
    path = Path(name)
    return path.is_dir() and (path / "config.json").exists()


class HFCausalLM(nn.Module):
    """Adapts a transformers causal LM to the :class:`CausalLM` call."""

    def __init__(self, model: Any, max_context: int) -> None:
        super().__init__()
        self.inner = model
        self._max_context = max_context

    @property
    def max_context(self) -> int:
        return self._max_context

    def forward(
        self, ids: torch.Tensor, key_mask: torch.Tensor, positions: torch.Tensor, past: KVCache | None = None
    ) -> tuple[torch.Tensor, KVCache]:
        from transformers import DynamicCache

        cache = DynamicCache()
        for layer, (keys, values) in enumerate(past or []):
            cache.update(keys, values, layer)
        # `past_key_values`, not the `cache` keyword transformers 5 logs as its new name:
        # with `cache=` a restored cache gave wrong logits (tests/unit/consumers/test_hf_models.py).
        out = self.inner(
            input_ids=ids,
            attention_mask=key_mask.long(),
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
        )
        new_cache: Any = getattr(out, "past_key_values", None) or cache
        return out.logits[:, -1], [(layer.keys, layer.values) for layer in new_cache.layers]


class HFDetokenizer:
    """Decodes the whole sequence each step and hands out the new suffix; text ending in
    a replacement character (half a multi-byte character) waits for the next token."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.tokens: list[int] = []
        self.emitted = 0

    def push(self, token: int) -> str:
        self.tokens.append(token)
        text: str = self.tokenizer.decode(self.tokens, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            return ""
        new, self.emitted = text[self.emitted :], len(text)
        return new


class HFCodec:
    def __init__(self, tokenizer: Any, eos_ids: frozenset[int]) -> None:
        self.tokenizer = tokenizer
        self.eos_ids = eos_ids
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else min(eos_ids, default=0))
        self.vocab_size = len(tokenizer)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=True)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        text: str = self.tokenizer.decode(ids, skip_special_tokens=True)
        return text

    @functools.cached_property
    def _grammar(self) -> GrammarTokenizer:
        return hf_tokenizer(self.tokenizer, self.eos_ids)

    def grammar_tokenizer(self) -> GrammarTokenizer:
        return self._grammar

    def render_chat(self, messages: Sequence[ChatMessage]) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            return render_plain(messages)
        turns = [{"role": m.role, "content": m.content} for m in messages]
        rendered: str = self.tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=False)
        return rendered

    def detokenizer(self) -> HFDetokenizer:
        return HFDetokenizer(self.tokenizer)


def load_hf(path: str, tp_mesh: Any = None) -> tuple[HFCausalLM, HFCodec, str]:
    """(model, codec, served name) of a local directory; raises ValueError when unusable.

    ``tp_mesh``: a tensor-parallel DeviceMesh; this rank then holds its shard of every layer,
    split by the tensor-parallel plan transformers ships for the architecture.
    """
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise ValueError(
            f"{path} is a Hugging Face model; install the extra: pip install 'kinfer[hf]'"
        ) from exc
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    config = json.loads((Path(path) / "config.json").read_text())
    # BPE text decodes exactly as tokenized; the WordPiece clean-up would eat spaces before punctuation.
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, clean_up_tokenization_spaces=False)
    model = AutoModelForCausalLM.from_pretrained(
        path, local_files_only=True, dtype=torch.float32, **_tensor_parallel(tp_mesh)
    )
    # A chat ends at the template's end of turn: the config's eos and the tokenizer's, when they differ.
    eos = config.get("eos_token_id")
    listed = eos if isinstance(eos, list) else [eos]
    eos_ids = frozenset(int(i) for i in [*listed, tokenizer.eos_token_id] if i is not None)
    max_context = int(config.get("max_position_embeddings") or tokenizer.model_max_length or 2048)
    return HFCausalLM(model, max_context), HFCodec(tokenizer, eos_ids), Path(path).resolve().name


def _tensor_parallel(mesh: Any) -> dict[str, Any]:
    if mesh is None:
        return {}
    import os

    from transformers.distributed.configuration_utils import DistributedConfig

    # transformers reads the rank's device index from LOCAL_RANK (torchrun sets it); on the
    # CPU every rank is the one device.
    os.environ.setdefault("LOCAL_RANK", "0")
    return {"distributed_config": DistributedConfig(tp_plan="auto", tp_size=mesh.size()), "device_mesh": mesh}
