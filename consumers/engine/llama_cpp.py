"""llama.cpp in the worker (``--engine llama.cpp``): GGUF models on llama.cpp's own kernels,
through ``llama-cpp-python``'s bindings of its C API.

The batch is kinfer's :class:`DecodeBatch` (the same stops, streaming, sampling and JSON-Schema
masks as the torch engine); llama.cpp holds the KV state. Each row is a llama.cpp sequence id
in one unified KV cache: a joining request is prefilled into a free sequence, every step is
one ``llama_decode`` of one token per row (several sequences in one ``llama_batch``), and a
row that leaves has its cells freed with ``llama_memory_seq_rm``, so rows join and leave
between steps exactly as they do on the torch engine. A request's ``n`` choices are one
prefill whose cells are shared by ``n`` sequences (``llama_memory_seq_cp``).

Sizing comes from the worker: the KV cache holds the batch's token budget (prompt + new
tokens of every row), one sequence per row of the batch's row limit.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np
import structlog
import torch

from kinfer.consumers.engine.decode_batch import DecodeBatch
from kinfer.consumers.engine.llama_vocab import LlamaCodec
from kinfer.consumers.engine.local_runner import LocalRunner
from kinfer.consumers.engine.runner import (
    EngineLoadFailed,
)

MAX_SEQUENCES = 256
"""llama.cpp's own limit on sequence ids in one context (LLAMA_MAX_SEQ)."""

_CPU = torch.device("cpu")
_backend = threading.Lock()
_started = False


@dataclass(frozen=True)
class LlamaSizing:
    """How large the llama.cpp context is made (from the worker's batch limits)."""

    kv_tokens: int
    """KV cells: the batch's token budget (a row's prompt and new tokens, all rows)."""
    sequences: int
    """Sequence ids: the batch's row limit."""
    threads: int
    """CPU threads for prefill and decode."""
    prefill_chunk: int = 512
    """Most tokens one ``llama_decode`` call takes; longer prefills go in several calls."""


class LlamaSequences:
    """A :class:`~kinfer.consumers.engine.decode_batch.SequenceStore` in a llama.cpp context."""

    def __init__(self, engine: LlamaEngine) -> None:
        self.engine = engine
        self.seqs: list[int] = []
        """Row -> sequence id."""
        self.pos: list[int] = []
        """Row -> position of its next token."""

    @property
    def max_context(self) -> int:
        return self.engine.max_context

    def prefill(self, prompts: Sequence[list[int]], copies: Sequence[int]) -> torch.Tensor:
        engine = self.engine
        wanted = sum(copies)
        if wanted > len(engine.free):
            raise RuntimeError(f"llama.cpp context has {len(engine.free)} free sequences, {wanted} wanted")
        firsts = [engine.free.pop() for _ in prompts]
        try:
            logits = engine.forward(
                [(seq, prompt, 0) for seq, prompt in zip(firsts, prompts, strict=True)], last_only=True
            )
        except BaseException:
            for seq in firsts:
                engine.release(seq)
            raise
        rows: list[int] = []
        for i, (seq, prompt, n) in enumerate(zip(firsts, prompts, copies, strict=True)):
            for choice in range(n):
                row_seq = seq if choice == 0 else engine.copy(seq)
                self.seqs.append(row_seq)
                self.pos.append(len(prompt))
                rows.append(i)
        return logits[torch.tensor(rows, dtype=torch.long)] if wanted != len(prompts) else logits

    def decode(self, tokens: Sequence[int]) -> torch.Tensor:
        steps = [(seq, [token], pos) for seq, token, pos in zip(self.seqs, tokens, self.pos, strict=True)]
        logits = self.engine.forward(steps, last_only=True)
        self.pos = [p + 1 for p in self.pos]
        return logits

    def keep(self, rows: Sequence[int]) -> None:
        kept = set(rows)
        for row, seq in enumerate(self.seqs):
            if row not in kept:
                self.engine.release(seq)
        self.seqs = [self.seqs[r] for r in rows]
        self.pos = [self.pos[r] for r in rows]

    def __del__(self) -> None:
        for seq in getattr(self, "seqs", []):
            self.engine.release(seq)


class LlamaEngine:
    """One llama.cpp model and context; sequence ids are handed to batches from ``free``."""

    def __init__(self, path: Path, sizing: LlamaSizing) -> None:
        start_backend()
        self.path = path
        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = 0  # this build's kernels are the CPU's
        self.model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
        if not self.model:
            raise EngineLoadFailed(f"llama.cpp could not load {path}: {_last_errors()}")
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = sizing.kv_tokens
        # A chunk larger than the cache makes llama.cpp abort the process (GGML_ASSERT), not fail
        # the call: never ask for one.
        chunk = min(sizing.prefill_chunk, sizing.kv_tokens)
        cparams.n_batch = cparams.n_ubatch = chunk
        cparams.n_seq_max = sizing.sequences
        cparams.n_threads = cparams.n_threads_batch = sizing.threads
        cparams.kv_unified = True  # any row may use any cell: one budget for the whole batch
        cparams.no_perf = True
        self.ctx = llama_cpp.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            llama_cpp.llama_model_free(self.model)
            why = _last_errors()
            raise EngineLoadFailed(f"llama.cpp could not make a context of {sizing.kv_tokens} tokens: {why}")
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.vocab = LlamaCodec(self.model)
        self.n_vocab = self.vocab.vocab_size
        self.chunk = chunk
        self._batch = llama_cpp.llama_batch_init(self.chunk, 0, 1)
        self.free = list(range(int(cparams.n_seq_max)))[::-1]
        train = int(llama_cpp.llama_model_n_ctx_train(self.model))
        self.max_context = min(train, int(llama_cpp.llama_n_ctx(self.ctx)))
        self.parameter_bytes = int(llama_cpp.llama_model_size(self.model))

    def release(self, seq: int) -> None:
        llama_cpp.llama_memory_seq_rm(self.memory, seq, -1, -1)
        self.free.append(seq)

    def copy(self, seq: int) -> int:
        """A new sequence sharing ``seq``'s cells (another choice of the same prompt)."""
        other = self.free.pop()
        llama_cpp.llama_memory_seq_cp(self.memory, seq, other, -1, -1)
        return other

    def forward(self, parts: Sequence[tuple[int, list[int], int]], *, last_only: bool) -> torch.Tensor:
        """Decode ``(sequence, tokens, first position)`` parts; the logits after each part's
        last token, (parts, vocab) float32. Parts longer than a chunk go over several calls."""
        flat = [
            (seq, token, start + i, i == len(tokens) - 1)
            for seq, tokens, start in parts
            for i, token in enumerate(tokens)
        ]
        out: list[np.ndarray[Any, Any]] = []
        batch = self._batch
        for begin in range(0, len(flat), self.chunk):
            piece = flat[begin : begin + self.chunk]
            for i, (seq, token, pos, wants) in enumerate(piece):
                batch.token[i] = token
                batch.pos[i] = pos
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = seq
                batch.logits[i] = wants or not last_only
            batch.n_tokens = len(piece)
            status = llama_cpp.llama_decode(self.ctx, batch)
            if status != 0:
                what = "no free KV cells" if status == 1 else f"status {status}"
                raise RuntimeError(f"llama_decode failed ({what}) for {len(piece)} tokens")
            outputs = sum(1 for *_, wants in piece if wants or not last_only)
            if outputs:
                pointer = llama_cpp.llama_get_logits(self.ctx)
                out.append(np.ctypeslib.as_array(pointer, shape=(outputs, self.n_vocab)).copy())
        return torch.from_numpy(np.concatenate(out)) if out else torch.zeros((0, self.n_vocab))

    def close(self) -> None:
        if self.ctx:
            llama_cpp.llama_batch_free(self._batch)
            llama_cpp.llama_free(self.ctx)
            llama_cpp.llama_model_free(self.model)
            self.ctx = None


class LlamaCppRunner(LocalRunner):
    """A :class:`ModelRunner` over a GGUF file."""

    def __init__(self, engine: LlamaEngine, *, name: str) -> None:
        self.engine = engine
        self.tokenizer = engine.vocab
        self._name = name
        self.device = _CPU

    @property
    def max_context(self) -> int:
        return self.engine.max_context

    def parameter_bytes(self) -> int:
        return self.engine.parameter_bytes

    def batch(self) -> DecodeBatch[Any]:
        return DecodeBatch(LlamaSequences(self.engine), self.tokenizer, _CPU)


def is_gguf(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(4) == b"GGUF"
    except OSError:
        return False


def load_llama(path: str, sizing: LlamaSizing, *, served_name: str | None = None) -> LlamaCppRunner:
    """The runner for a GGUF file; :class:`EngineLoadFailed` names what is wrong with it."""
    if sizing.sequences > MAX_SEQUENCES:
        why = f"llama.cpp holds at most {MAX_SEQUENCES} sequences; --max-batch-requests is {sizing.sequences}"
        raise EngineLoadFailed(why)
    file = Path(path)
    if not file.is_file():
        raise EngineLoadFailed(f"{path}: no such GGUF file (llama.cpp serves a .gguf file or a pulled model)")
    if not is_gguf(file):
        raise EngineLoadFailed(f"{path} is not a GGUF file (its first bytes are not 'GGUF')")
    engine = LlamaEngine(file, sizing)
    return LlamaCppRunner(engine, name=served_name or file.stem)


def start_backend() -> None:
    """llama.cpp's backend, once per process; its log lines go to Python logging at warning."""
    global _started
    with _backend:
        if not _started:
            llama_cpp.llama_backend_init()
            llama_cpp.llama_log_set(_quiet_log, ctypes.c_void_p(0))
            _started = True


_LOG_ERROR = 4
"""ggml_log_level: NONE, DEBUG, INFO, WARN, ERROR (4), CONT."""
_errors: list[str] = []
"""llama.cpp's latest error lines, for the message of a load that failed."""


@llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
def _quiet_log(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
    if level == _LOG_ERROR:
        line = text.decode(errors="replace").strip()
        _errors[:] = [*_errors[-4:], line]
        structlog.get_logger("llama.cpp").warning("llama_cpp.error", text=line)


def _last_errors() -> str:
    said, _errors[:] = "; ".join(_errors), []
    return said or "llama.cpp said nothing"
