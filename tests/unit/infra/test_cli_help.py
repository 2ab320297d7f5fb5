"""Every setting has one declaration: its flag, its KINFER_ variable and its help agree."""

from __future__ import annotations

import os
import re

import pytest
import typer
from typer.testing import CliRunner

from kinfer.infra.cli import app
from kinfer.infra.cli_common import settings_from
from kinfer.infra.cli_options import Knob, section_knobs, shared_knobs
from kinfer.infra.env_vars import env_names, unknown_variables
from kinfer.infra.settings import COMPOSED, SECTIONS, KinferSettings

COMMANDS = typer.main.get_command(app)
STAGE_COMMANDS = {
    "client": ["submit", "chat"],
    "admission": ["admission"],
    "worker": ["worker"],
    "gateway": ["gateway"],
    "pool": ["pool"],
}


def options_of(command: str | None) -> dict[str, object]:
    """Flag -> click option of a command (None: the options given before any command)."""
    target = COMMANDS if command is None else COMMANDS.commands[command]  # type: ignore[attr-defined]
    return {opt: param for param in target.params for opt in param.opts}


def help_of(*argv: str) -> str:
    result = CliRunner().invoke(app, [*argv, "--help"], env={"COLUMNS": "400", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return re.sub(r"\s+", " ", result.output.replace("│", " "))


def agree(knob: Knob, command: str | None) -> None:
    option = options_of(command).get(knob.flag)
    where = f"`kinfer {command or ''}`"
    assert option is not None, f"{where} has no {knob.flag} for {knob.section or 'shared'}.{knob.name}"
    assert option.envvar == knob.envvar, f"{where} {knob.flag} reads {option.envvar}, not {knob.envvar}"
    assert knob.help and option.help == knob.help, f"{where} {knob.flag}: help is not the field's docstring"
    assert knob.envvar in env_names()


@pytest.mark.parametrize("section", list(SECTIONS))
def test_every_section_field_is_a_flag_of_its_commands(section: str) -> None:
    knobs = section_knobs(section)
    assert knobs
    covered = {
        name
        for command in STAGE_COMMANDS[section]
        for name in (k.name for k in knobs if k.flag in options_of(command))
    }
    assert covered == {k.name for k in knobs}, (
        f"no flag anywhere for {section}: {set(k.name for k in knobs) - covered}"
    )
    for command in STAGE_COMMANDS[section]:
        for knob in knobs:
            if knob.flag in options_of(command):
                agree(knob, command)


def test_every_shared_setting_is_a_flag_before_any_command() -> None:
    for knob in shared_knobs():
        agree(knob, None)
    for command in ("worker", "pool"):
        agree(shared_knobs(["region"])[0], command)


def test_help_shows_each_flag_with_its_variable() -> None:
    text = help_of("worker")
    for knob in section_knobs("worker"):
        assert f"{knob.flag} " in text and f"[env var: {knob.envvar}]" in text, knob.flag


def test_composed_fields_are_shared_settings() -> None:
    shared = set(KinferSettings.model_fields) - set(SECTIONS)
    settings = KinferSettings()
    for section, fields in COMPOSED.items():
        assert fields <= set(SECTIONS[section].model_fields), section
        assert set(settings.composed(section)) == fields
    assert {"bootstrap_servers", "topic_prefix", "redis_url", "region", "region_weights"} <= shared


def test_a_flag_and_its_variable_set_the_same_field(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("KINFER_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("KINFER_WORKER__MAX_WAIT_MS", "7")
    monkeypatch.setenv("KINFER_WORKER__MODEL", "echo")
    from_env = settings_from().worker_config()
    from_flag = settings_from({"worker": {"max_batch_requests": 3}}).worker_config()
    assert (from_env.max_wait_ms, from_env.model) == (7, "echo")
    assert (from_flag.max_wait_ms, from_flag.max_batch_requests, from_flag.model) == (7, 3, "echo")


def test_an_unknown_variable_is_refused_with_the_setting_it_means() -> None:
    unknown = unknown_variables({"KINFER_MAX_WAIT_MS": "5", "KINFER_TOPIC_PREFX": "x", "KINFER_REGION": "eu"})
    assert unknown == [
        "KINFER_MAX_WAIT_MS (did you mean KINFER_WORKER__MAX_WAIT_MS?)",
        "KINFER_TOPIC_PREFX (did you mean KINFER_TOPIC_PREFIX?)",
    ]
    result = CliRunner().invoke(app, ["worker"], env={"KINFER_MAX_WAIT_MS": "5"})
    assert result.exit_code == 2
    assert "KINFER_WORKER__MAX_WAIT_MS" in result.output


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"KINFER_WORKER__DTYPE": "float8"}, "dtype"),
        ({"KINFER_WORKER__DEVICE": "tpu"}, "device"),
        ({"KINFER_WORKER__QUANTIZE": "int4"}, "quantize"),
        ({"KINFER_WORKER__MAX_BATCH_REQUESTS": "5000"}, "max_batch_requests"),
    ],
)
def test_bad_values_are_refused_at_start_naming_the_setting(env: dict[str, str], needle: str) -> None:
    result = CliRunner().invoke(app, ["worker", "--model", "echo"], env=env)
    assert result.exit_code == 2, result.output
    assert needle in result.output


def test_bench_runs_the_checkouts_suite_and_passes_its_verdict_on(capfd: pytest.CaptureFixture[str]) -> None:
    result = CliRunner().invoke(app, ["bench", "no-such-benchmark"])
    assert result.exit_code == 2
    assert "unknown benchmark(s): no-such-benchmark" in capfd.readouterr().out
