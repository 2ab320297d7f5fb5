"""The README's configuration table lists every KINFER_ setting."""

from pathlib import Path

from infra.settings import KinferSettings

README = Path(__file__).resolve().parents[3] / "README.md"


def test_every_setting_is_documented() -> None:
    text = README.read_text()
    missing = [
        f"KINFER_{name.upper()}"
        for name in KinferSettings.model_fields
        if f"`KINFER_{name.upper()}`" not in text
    ]
    assert not missing, f"add to the README's configuration table: {missing}"
