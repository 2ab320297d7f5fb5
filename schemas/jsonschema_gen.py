"""Generates the checked-in JSON Schema files from the wire structs.

Run ``python -m kinfer.schemas.jsonschema_gen`` after changing a message; a test fails
while the files on disk differ from what the structs say.
"""

from __future__ import annotations

import ast
import inspect
import json
import textwrap
from pathlib import Path
from typing import Any

import msgspec

from kinfer import schemas
from kinfer.schemas import (
    CancelAck,
    CancelRequest,
    DeadLetter,
    ErrorReply,
    InferenceRequest,
    InferenceResult,
    TokenChunk,
    WorkerEvent,
)

SCHEMA_DIR = Path(__file__).parent / "jsonschema"

MESSAGES: dict[str, type[msgspec.Struct]] = {
    "inference_request": InferenceRequest,
    "inference_result": InferenceResult,
    "token_chunk": TokenChunk,
    "error_reply": ErrorReply,
    "worker_event": WorkerEvent,
    "dead_letter": DeadLetter,
    "cancel_request": CancelRequest,
    "cancel_ack": CancelAck,
}


def _docstring(node: ast.stmt) -> str | None:
    if (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    ):
        return " ".join(node.value.value.split())
    return None


def field_docs(struct: type) -> dict[str, str]:
    """Each field's docstring (the string under it in the class body), whitespace folded:
    what the field means, said once in the code and carried into the schema files."""
    body = ast.parse(textwrap.dedent(inspect.getsource(struct))).body[0]
    assert isinstance(body, ast.ClassDef)
    docs: dict[str, str] = {}
    for node, after in zip(body.body, body.body[1:], strict=False):
        doc = _docstring(after)
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and doc is not None:
            docs[node.target.id] = doc
    return docs


def described(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with a ``description`` on every property whose field has a docstring."""
    for title, definition in schema.get("$defs", {}).items():
        struct = getattr(schemas, title, None)
        if not (isinstance(struct, type) and issubclass(struct, msgspec.Struct)):
            continue
        for name, doc in field_docs(struct).items():
            prop = definition.get("properties", {}).get(name)
            if prop is not None:
                prop["description"] = doc
    return schema


def render(message: type[msgspec.Struct]) -> str:
    """The JSON Schema of one message, as the checked-in file holds it."""
    schema = described(msgspec.json.schema(message))
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def expected_files() -> dict[Path, str]:
    return {SCHEMA_DIR / f"{name}.json": render(cls) for name, cls in MESSAGES.items()}


def main() -> None:
    SCHEMA_DIR.mkdir(exist_ok=True)
    for path, text in expected_files().items():
        path.write_text(text)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
