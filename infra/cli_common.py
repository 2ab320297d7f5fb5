"""What every `kinfer` command shares: settings from KINFER_ variables and flags, and
typed errors printed as one line instead of a traceback."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer

from kinfer.infra import logs
from kinfer.infra.cli_options import Given
from kinfer.infra.env_vars import unknown_variables
from kinfer.infra.settings import KinferSettings
from kinfer.schemas import KinferError

F = TypeVar("F", bound=Callable[..., Any])


def settings_from(given: Given | None = None) -> KinferSettings:
    """KINFER_ settings with the flags that were given on top (``with_knobs``). A KINFER_
    variable that sets nothing is an error, not a silent default."""
    given = dict(given or {})
    fields: dict[str, Any] = {**given.pop("", {}), **given}
    unknown = unknown_variables(os.environ)
    if unknown:
        typer.echo(f"error [invalid_settings]: not settings: {', '.join(unknown)}", err=True)
        raise typer.Exit(2)
    try:
        settings = KinferSettings(**fields)
    except ValueError as exc:
        typer.echo(f"error [invalid_settings]: {exc}", err=True)
        raise typer.Exit(2) from exc
    logs.configure(level=settings.log_level, fmt=settings.log_format)
    return settings


def friendly(fn: F) -> F:
    """Typed kinfer errors become one clear line and exit code 1, not a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KinferError as exc:
            typer.echo(f"error [{exc.code.value}]: {exc.message}", err=True)
            raise typer.Exit(1) from exc

    return wrapper  # type: ignore[return-value]
