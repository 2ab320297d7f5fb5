"""Command-line options derived from the typed settings, so that a knob's flag, its KINFER_
variable and its help all come from its one declaration (a field of a stage's config, or of
``KinferSettings`` for the stack and the shared connection)."""

from __future__ import annotations

import inspect
import json
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import typer
from pydantic.fields import FieldInfo

from kinfer.infra.settings import COMPOSED, ENV_PREFIX, NESTED, SECTIONS, KinferSettings

F = TypeVar("F", bound=Callable[..., Any])

Given = dict[str, dict[str, Any]]
"""Flags given on a command line: section ("" for the shared settings) -> field -> value."""


@dataclass(frozen=True)
class Knob:
    """One setting as the CLI shows it."""

    section: str
    """"" for a shared setting of ``KinferSettings``."""
    name: str
    field: FieldInfo

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def envvar(self) -> str:
        section = f"{self.section.upper()}{NESTED}" if self.section else ""
        return f"{ENV_PREFIX}{section}{self.name.upper()}"

    @property
    def param(self) -> str:
        """The Python parameter name, unique across sections."""
        return f"{self.section or 'shared'}__{self.name}"

    @property
    def help(self) -> str:
        return " ".join((self.field.description or "").replace("``", "").split())

    @property
    def annotation(self) -> Any:
        """The field's type without ``None``."""
        hint = self.field.annotation
        if get_origin(hint) in (Union, types.UnionType):
            hint = next(arg for arg in get_args(hint) if arg is not type(None))
        return hint

    @property
    def is_json(self) -> bool:
        """Dicts, tuples and the like are given as JSON on the command line."""
        hint = self.annotation
        return hint not in (int, float, str, bool, Path) and get_origin(hint) is not Literal

    def option(self) -> inspect.Parameter:
        hint = self.annotation
        decls: list[str] = [self.flag]
        if hint is bool:
            decls = [f"{self.flag}/--no-{self.flag[2:]}"]
        elif self.is_json:
            hint = str
        option = typer.Option(*decls, help=self.help, envvar=self.envvar, show_envvar=True)
        kind = inspect.Parameter.KEYWORD_ONLY
        return inspect.Parameter(self.param, kind, default=None, annotation=Annotated[hint | None, option])

    def value(self, given: Any) -> Any:
        return json.loads(given) if self.is_json and isinstance(given, str) else given


def section_knobs(section: str) -> list[Knob]:
    """Every field of a section that a user sets (the composed connection fields are not)."""
    fields = SECTIONS[section].model_fields
    return [Knob(section, name, field) for name, field in fields.items() if name not in COMPOSED[section]]


def shared_knobs(names: Iterable[str] | None = None) -> list[Knob]:
    """Shared settings of ``KinferSettings`` (all of them, or those named)."""
    fields = {k: v for k, v in KinferSettings.model_fields.items() if k not in SECTIONS}
    return [Knob("", name, fields[name]) for name in (names if names is not None else fields)]


CONTEXT = "knob_context"


def with_knobs(*knobs: Knob) -> Callable[[F], F]:
    """Add an option per knob to a command; the command receives what was given (a flag, or
    the variable typer read) as ``given``, on top of the shared options given before the
    command (which the root callback keeps in ``ctx.obj``)."""

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn, eval_str=True)  # typer reads a set signature as it is
        own = [p for name, p in signature.parameters.items() if name != "given"]
        context = next((p.name for p in own if p.annotation is typer.Context), None)
        added = (
            []
            if context
            else [inspect.Parameter(CONTEXT, inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)]
        )

        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            ctx: typer.Context = kwargs[context] if context else kwargs.pop(CONTEXT)
            root = ctx.find_root().obj
            given: Given = {section: dict(values) for section, values in (root or {}).items()}
            for knob in knobs:
                value = kwargs.pop(knob.param, None)
                if value is not None:
                    given.setdefault(knob.section, {})[knob.name] = knob.value(value)
            return fn(*args, given=given, **kwargs)

        wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[*own, *added, *(knob.option() for knob in knobs)]
        )
        return wrapper  # type: ignore[return-value]

    return decorate
