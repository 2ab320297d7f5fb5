"""`kinfer engine-server`: llama.cpp's llama-server (built by `make setup`) on a model kinfer
knows, in the foreground, for `kinfer worker --engine openai` to stand in front of."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import typer

from kinfer.infra.cli_common import friendly, settings_from


@friendly
def engine_server(
    model: Annotated[str, typer.Option(help="A catalogue model (kinfer models list) or a .gguf file.")] = (
        "smollm2-135m-instruct"
    ),
    quantize: Annotated[
        Literal["none", "int8", "q4_1"], typer.Option(help="int8: the Q8_0 GGUF; q4_1: the shipped one.")
    ] = "int8",
    dtype: Annotated[
        Literal["float32", "bfloat16", "float16"],
        typer.Option(help="With --quantize none: F32, BF16 or F16."),
    ] = "float32",
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8080,
    parallel: Annotated[int, typer.Option(help="Slots decoding at once (continuous batching).")] = 16,
    ctx_size: Annotated[int, typer.Option(help="KV cells for all slots together.")] = 16384,
    threads: Annotated[int | None, typer.Option(help="CPU threads (default: every core).")] = None,
    api_key: Annotated[str | None, typer.Option(help="Bearer token clients must send.")] = None,
) -> None:
    """Serve a model with llama-server, the OpenAI-compatible server of the same llama.cpp the
    worker embeds; prints the `kinfer worker --engine openai` command that uses it."""
    from kinfer.infra.models import CATALOG, ModelStore
    from kinfer.infra.models.gguf import ensure_gguf_local
    from kinfer.infra.stack.llama_server import LlamaServerConfig, llama_server_binary

    settings = settings_from()
    path = Path(ensure_gguf_local(model, ModelStore(settings.model_root), dtype, quantize))
    binary, libs = llama_server_binary()
    config = LlamaServerConfig(
        path,
        settings.state_dir,
        port=port,
        parallel=parallel,
        context=ctx_size,
        threads=threads,
        alias=model if model in CATALOG else None,
        api_key=api_key,
    )
    typer.echo(f"llama-server on {config.url} serving {path}")
    typer.echo(f"  kinfer worker --engine openai --engine-url {config.url} --model {model}")
    env = {**os.environ, "LD_LIBRARY_PATH": f"{libs}:{os.environ.get('LD_LIBRARY_PATH', '')}"}
    os.execve(binary, config.argv(binary), env)  # the foreground is llama-server's: Ctrl-C stops it
