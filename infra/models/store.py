"""The local model store: one Hugging Face folder per pulled model, with a manifest.

``<models_dir>/<name>/`` holds ``model.safetensors``, ``config.json``, the tokenizer
files and the chat template, plus ``kinfer-manifest.json`` saying where they came
from. A folder only appears whole: pulls build it under a hidden temp folder beside
it and rename it into place (``pull.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import msgspec

from kinfer.infra.models.catalog import CATALOG, ModelSpec

MANIFEST = "kinfer-manifest.json"
LAYOUT = 2
"""What a pull writes: 2 is transformers' own ``save_pretrained`` folder (1, before, had no
``architectures`` and a tokenizer llama.cpp's converter misread). An older pull is pulled again."""


class PulledModel(msgspec.Struct, frozen=True, kw_only=True):
    """What a pull wrote: the manifest of one model folder."""

    name: str
    source: str
    """``package==version`` and the member the weights came from."""
    gguf_sha256: str
    license: str
    bytes: int
    """Size of the converted folder."""
    pulled_at_ms: int
    layout: int = 1
    """Folder layout written (:data:`LAYOUT`)."""


@dataclass(frozen=True)
class ModelListing:
    """One row of `kinfer models list`."""

    spec: ModelSpec
    path: Path | None
    """Where the converted folder is; None when built in or not pulled yet."""
    pulled: PulledModel | None


class ModelStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def directory(self, name: str) -> Path:
        return self.root / name

    def get(self, name: str) -> PulledModel | None:
        """The manifest of a complete pull of ``name`` whose weights match the catalogue, else None."""
        spec = CATALOG.get(name)
        path = self.directory(name) / MANIFEST
        if spec is None or spec.builtin or not path.is_file():
            return None
        try:
            pulled = msgspec.json.decode(path.read_bytes(), type=PulledModel)
        except msgspec.DecodeError:
            return None
        return pulled if pulled.gguf_sha256 == spec.gguf_sha256 and pulled.layout == LAYOUT else None

    def listing(self) -> list[ModelListing]:
        rows = []
        for spec in CATALOG.values():
            pulled = self.get(spec.name)
            rows.append(ModelListing(spec, self.directory(spec.name) if pulled else None, pulled))
        return rows


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
