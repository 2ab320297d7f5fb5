"""The settings reference: a table per section, from the settings' one declaration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from kinfer.infra.cli_options import Knob, section_knobs, shared_knobs
from kinfer.infra.env_vars import nested_shared
from kinfer.infra.reference.markdown import cell
from kinfer.infra.settings import ENV_PREFIX, NESTED, SECTIONS


def default_of(field: FieldInfo) -> str:
    value: Any = field.get_default(call_default_factory=True)
    if field.default_factory is not None and value != field.get_default(call_default_factory=True):
        return "(made per process)"
    if value is None:
        return "(none)"
    if isinstance(value, BaseModel):
        return "(each field below)"
    if isinstance(value, Path):
        return f"`{value}`"
    if isinstance(value, (dict, tuple, list)):
        return f"`{json.dumps(value)}`"
    return f"`{str(value).lower() if isinstance(value, bool) else value}`"


def rows(knobs: list[Knob]) -> list[str]:
    return [f"| `{k.envvar}` | `{k.flag}` | {default_of(k.field)} | {cell(k.help)} |" for k in knobs]


def settings_tables() -> str:
    """A heading and a table per section: variable, flag, default, meaning."""
    header = ["| variable | flag | default | meaning |", "| --- | --- | --- | --- |"]
    out = ["## Shared", "", "Flags go before the command: `kinfer --topic-prefix t worker`.", "", *header]
    out += rows(shared_knobs())
    for name, model in nested_shared().items():
        parent = f"{ENV_PREFIX}{name.upper()}{NESTED}"
        out += [
            f"| `{parent}{field.upper()}` | (in `--{name.replace('_', '-')}` JSON) | {default_of(info)} | "
            + cell(info.description or "")
            + " |"
            for field, info in model.model_fields.items()
        ]
    for section, config in SECTIONS.items():
        title = (config.__doc__ or section).strip().splitlines()[0]
        out += ["", f"## `{section}`", "", title, "", *header, *rows(section_knobs(section))]
    return "\n".join(out)
