"""The packages' public names are deliberate: adding or removing one is an API change."""

import producers
import schemas


def test_schemas_exports() -> None:
    assert set(schemas.__all__) == {
        "DEFAULT_PREFIX",
        "DEFAULT_REGIONS",
        "SCHEMA_VERSION",
        "ChatMessage",
        "DeadLetter",
        "ErrorCode",
        "ErrorReply",
        "InferenceRequest",
        "InferenceResult",
        "InvalidMessage",
        "KinferError",
        "RateLimitStatus",
        "Reply",
        "ReplyAddress",
        "SamplingParams",
        "TokenChunk",
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
        "ChatMessage",
        "Client",
        "ClientClosed",
        "ClientConfig",
        "DeadlineExceeded",
        "InternalError",
        "InvalidRequest",
        "RateLimited",
        "RequestFailed",
        "Unavailable",
    }
    assert all(hasattr(producers, name) for name in producers.__all__)


def test_layout_imports_follow_the_design() -> None:
    """producers, streams and consumers never import each other; schemas imports none of ours."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    allowed = {
        "schemas": {"schemas"},
        "producers": {"schemas", "producers"},
        "streams": {"schemas", "streams"},
        "consumers": {"schemas", "consumers"},
    }
    ours = {"schemas", "producers", "streams", "consumers", "infra", "benchmarks"}
    for package, ok in allowed.items():
        for path in (root / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else ([node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
                )
                for name in names:
                    top = name.split(".")[0]
                    assert top not in ours or top in ok, f"{path.relative_to(root)} imports {name}"
