"""What every `kinfer` command shares: settings from KINFER_ variables and flags, and
typed errors printed as one line instead of a traceback."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer

from infra import logs
from infra.settings import KinferSettings
from schemas import KinferError

F = TypeVar("F", bound=Callable[..., Any])


def settings_from(**overrides: Any) -> KinferSettings:
    """KINFER_ settings with the flags that were given (None = not given) on top."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        settings = KinferSettings(**clean)
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
