"""`kinfer worker --help` documents every knob of the worker."""

from typer.testing import CliRunner

from consumers.config import WorkerConfig
from infra.cli import app

FROM_ENVIRONMENT = {"bootstrap_servers", "topic_prefix", "redis_url"}
"""Named in the help's epilog as KINFER_ variables."""


def test_worker_help_names_every_config_field() -> None:
    result = CliRunner().invoke(app, ["worker", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0
    text = result.output
    for field in WorkerConfig.model_fields:
        needle = f"KINFER_{field.upper()}" if field in FROM_ENVIRONMENT else "--" + field.replace("_", "-")
        assert needle in text, f"{needle} missing from `kinfer worker --help`"
