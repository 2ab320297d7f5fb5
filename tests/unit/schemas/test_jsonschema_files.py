"""The checked-in JSON Schema files must be what the structs say (regenerate:
``python -m kinfer.schemas.jsonschema_gen``)."""

from kinfer.schemas.jsonschema_gen import expected_files


def test_jsonschema_files_match_the_structs() -> None:
    stale = [
        path.name for path, text in expected_files().items() if not path.exists() or path.read_text() != text
    ]
    assert not stale, f"regenerate with `python -m kinfer.schemas.jsonschema_gen`: {stale}"
