"""Generates the checked-in JSON Schema files from the wire structs.

Run ``python -m kinfer.schemas.jsonschema_gen`` after changing a message; a test fails
while the files on disk differ from what the structs say.
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from kinfer.schemas.messages import (
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


def render(message: type[msgspec.Struct]) -> str:
    """The JSON Schema of one message, as the checked-in file holds it."""
    schema = msgspec.json.schema(message)
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
