"""The README's configuration tables are the settings' own declaration, rendered."""

from kinfer.infra.settings_doc import README, rendered


def test_the_configuration_tables_match_the_settings() -> None:
    text = README.read_text()
    fix = "run `python -m kinfer.infra.settings_doc`"
    assert rendered(text) == text, f"README drifted from the settings: {fix}"
