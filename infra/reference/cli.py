"""The CLI reference: every `kinfer` command with its arguments and options, read from the typer app."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import typer
from typer._click.core import Command  # typer 0.29 carries its own click: its classes, not click's
from typer.core import TyperArgument, TyperGroup, TyperOption

from kinfer.infra.cli import app
from kinfer.infra.reference.markdown import cell


def commands(command: Command, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Command]]:
    """The command and every subcommand below it, depth first, by name."""
    yield path, command
    if isinstance(command, TyperGroup):
        for name, sub in sorted(command.commands.items()):
            if not sub.hidden:
                yield from commands(sub, (*path, name))


def option_row(param: TyperOption) -> str:
    names = " / ".join(f"`{name}`" for name in (*param.opts, *param.secondary_opts))
    envvar = f"`{param.envvar}`" if isinstance(param.envvar, str) else ""
    if envvar:
        default = "[its setting](settings.md)"
    elif param.is_flag and not param.secondary_opts:
        default = "off"
    else:
        default = "(none)" if param.default is None else f"`{param.default}`"
    return f"| {names} | {envvar} | {default} | {cell(param.help or '')} |"


def usage(path: tuple[str, ...], command: Command) -> str:
    arguments = [p for p in command.params if isinstance(p, TyperArgument)]
    words = [*path, "[OPTIONS]" if any(isinstance(p, TyperOption) for p in command.params) else ""]
    words += [(p.name or "").upper() if p.required else f"[{(p.name or '').upper()}]" for p in arguments]
    if isinstance(command, TyperGroup):
        words.append("COMMAND")
    return " ".join(w for w in words if w)


def section(path: tuple[str, ...], command: Command) -> list[str]:
    depth = "#" * min(len(path) + 1, 4)
    out = [
        f"{depth} `{' '.join(path)}`",
        "",
        inspect.cleandoc(command.help or ""),
        "",
        "```",
        usage(path, command),
        "```",
    ]
    options = [p for p in command.params if isinstance(p, TyperOption) and not p.hidden]
    if options:
        out += ["", "| option | variable | default | meaning |", "| --- | --- | --- | --- |"]
        out += [option_row(p) for p in options]
    return [*out, ""]


def cli_reference() -> str:
    """A section per command: what it does, its usage line and its options."""
    root = typer.main.get_command(app)
    assert isinstance(root, TyperGroup)
    lines: list[str] = []
    for path, command in commands(root, ("kinfer",)):
        lines += section(path, command)
    return "\n".join(lines).rstrip()
