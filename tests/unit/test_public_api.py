"""kinfer installs as one package, and its public names are deliberate: adding or removing
one is an API change (httpx guards its exports the same way)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import kinfer
from kinfer import producers, schemas

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("schemas", "producers", "streams", "consumers", "infra")


def test_kinfer_exports() -> None:
    assert set(kinfer.__all__) == {
        "SCHEMA_VERSION",
        "AsyncClient",
        "CancelAck",
        "Cancelled",
        "ChatMessage",
        "Choice",
        "Client",
        "ClientClosed",
        "ClientConfig",
        "DeadLetter",
        "DeadlineExceeded",
        "ErrorCode",
        "ErrorReply",
        "InferenceRequest",
        "InferenceResult",
        "InternalError",
        "InvalidMessage",
        "InvalidRequest",
        "KafkaConnection",
        "KafkaSecurity",
        "KinferError",
        "RateLimited",
        "ReplyAddress",
        "RequestFailed",
        "SamplingParams",
        "Timings",
        "TokenChunk",
        "TokenLogprob",
        "TopLogprob",
        "TopicNames",
        "Unauthenticated",
        "Unavailable",
        "Usage",
        "WorkerEvent",
        "decode_reply",
        "decode_request",
        "encode",
    }
    assert all(hasattr(kinfer, name) for name in kinfer.__all__)
    public = {name for name in vars(kinfer) if not name.startswith("_")} - set(FOLDERS)
    assert public == set(kinfer.__all__), "a name kinfer exports is missing from __all__"


def test_schemas_exports() -> None:
    assert set(schemas.__all__) == {
        "DEFAULT_PREFIX",
        "DEFAULT_REGIONS",
        "SCHEMA_VERSION",
        "CancelAck",
        "CancelRequest",
        "CancelStatus",
        "ChatMessage",
        "Choice",
        "DeadLetter",
        "ErrorCode",
        "ErrorReply",
        "InferenceRequest",
        "InferenceResult",
        "InvalidMessage",
        "KafkaConnection",
        "KafkaSecurity",
        "KinferError",
        "RateLimitStatus",
        "Reply",
        "ReplyAddress",
        "SamplingParams",
        "Timings",
        "TokenChunk",
        "TokenLogprob",
        "TopLogprob",
        "TopicNames",
        "Usage",
        "WorkerEvent",
        "decode_dead_letter",
        "decode_event",
        "decode_reply",
        "decode_request",
        "encode",
    }
    assert all(hasattr(schemas, name) for name in schemas.__all__)


def test_producers_exports() -> None:
    assert set(producers.__all__) == {
        "AsyncClient",
        "Cancelled",
        "ChatMessage",
        "Client",
        "ClientClosed",
        "ClientConfig",
        "DeadlineExceeded",
        "InternalError",
        "InvalidRequest",
        "RateLimited",
        "RequestFailed",
        "Unauthenticated",
        "Unavailable",
    }
    assert all(hasattr(producers, name) for name in producers.__all__)


def imports_of(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_layout_imports_follow_the_design() -> None:
    """producers, streams and consumers never import each other; schemas imports none of ours;
    and everything of ours is imported as kinfer.<folder>, never by its bare folder name."""
    allowed = {
        "schemas": {"schemas"},
        "producers": {"schemas", "producers"},
        "streams": {"schemas", "streams"},
        "consumers": {"schemas", "consumers"},
        "infra": set(FOLDERS),
    }
    for folder, ok in allowed.items():
        for path in (ROOT / folder).rglob("*.py"):
            for name in imports_of(path):
                parts = name.split(".")
                where = path.relative_to(ROOT)
                assert parts[0] not in (*FOLDERS, "benchmarks"), f"{where} imports {name}: use kinfer.{name}"
                if parts[0] == "kinfer" and len(parts) > 1:
                    assert parts[1] in ok, f"{where} imports {name}"


def test_the_package_links_every_folder() -> None:
    for folder in FOLDERS:
        link = ROOT / "kinfer" / folder
        assert link.is_symlink() and link.resolve() == ROOT / folder, link


def test_the_wheel_installs_one_top_level_name(tmp_path: Path) -> None:
    source = tmp_path / "source"  # setuptools writes build/ beside the sources: build a copy
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    skip = shutil.ignore_patterns("__pycache__")
    for name in ("kinfer", *FOLDERS):
        shutil.copytree(ROOT / name, source / name, symlinks=True, ignore=skip)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            tmp_path,
            source,
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("kinfer-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"kinfer"}
    assert "kinfer/schemas/jsonschema/inference_request.json" in names
    assert "kinfer/infra/kafka/pom.xml" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "kinfer = kinfer.infra.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
