"""The `kinfer` command line: the stack, the stages, the models, and a client."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from kinfer.infra import cli_stack
from kinfer.infra.cli_common import friendly as _friendly
from kinfer.infra.cli_common import settings_from as _settings
from kinfer.infra.cli_engine import engine_server
from kinfer.infra.cli_models import models_app
from kinfer.infra.cli_monitor import monitor
from kinfer.infra.cli_options import Given, section_knobs, shared_knobs, with_knobs
from kinfer.infra.cli_regions import regions_app
from kinfer.infra.cli_tenants import tenant_app
from kinfer.schemas import SamplingParams

app = typer.Typer(no_args_is_help=True, add_completion=False, help="LLM inference as a Kafka pipeline.")
cli_stack.register(app)
app.add_typer(models_app, name="models")
app.command()(monitor)
app.command("engine-server")(engine_server)
app.add_typer(tenant_app, name="tenant")
app.add_typer(regions_app, name="regions")


SUBMIT_KNOBS = [
    k for k in section_knobs("client") if k.name in ("model", "tenant", "timeout_s", "check_consumers")
]
FAIL_FAST = {"client": {"check_consumers": True}}
"""From the command line, fail at once when nothing is serving (the SDK's default is to wait)."""


@app.callback()
@with_knobs(*shared_knobs())
def main_options(ctx: typer.Context, given: Given) -> None:
    """LLM inference as a Kafka pipeline. Every option reads the KINFER_ variable its help names;
    the shared options below may be given before any command."""
    ctx.obj = given


@app.command()
@_friendly
@with_knobs(*SUBMIT_KNOBS)
def submit(
    prompt: str,
    given: Given,
    max_tokens: Annotated[int, typer.Option(help="Most new tokens.")] = 32,
    temperature: Annotated[float, typer.Option(help="0 = greedy.")] = 0.0,
    seed: Annotated[int | None, typer.Option(help="Seed for sampling.")] = None,
    raw: Annotated[bool, typer.Option("--raw", help="Continue the text instead of answering it.")] = False,
) -> None:
    """Send one request through the pipeline and print the answer.

    The prompt is sent as one user message, answered through the model's chat template;
    --raw sends it as plain text to continue.
    """
    from kinfer.producers import AsyncClient, ChatMessage

    config = _settings(_over(FAIL_FAST, given)).client_config()

    async def run() -> str:
        async with AsyncClient(config) as client:
            sampling = SamplingParams(max_tokens=max_tokens, temperature=temperature, seed=seed)
            asked = prompt if raw else [ChatMessage("user", prompt)]
            result = await client.generate(asked, sampling=sampling)
            return result.text

    typer.echo(asyncio.run(run()))


CANCEL_KNOBS = [k for k in section_knobs("client") if k.name in ("tenant", "timeout_s")]


@app.command()
@_friendly
@with_knobs(*CANCEL_KNOBS)
def cancel(request_id: str, given: Given) -> None:
    """Cancel a request of the tenant by its id: prints what the cancel did.

    The request itself still gets one answer, on its own reply address: `cancelled` with the
    text made so far, or its result if it finished first. Exit status 1 when refused.
    """
    from kinfer.producers import AsyncClient

    config = _settings(given).client_config()

    async def run() -> tuple[str, str]:
        async with AsyncClient(config) as client:
            ack = await client.cancel(request_id, timeout_s=config.timeout_s)
            code = f" ({ack.code.value})" if ack.code is not None else ""
            return ack.status, f"{ack.status}{code}: {ack.message}"

    status, line = asyncio.run(run())
    typer.echo(line)
    if status == "refused":
        raise typer.Exit(1)


@app.command("chat")
@_friendly
@with_knobs(*section_knobs("client"))
def chat_command(
    given: Given,
    max_tokens: Annotated[int, typer.Option(help="Most new tokens per answer.")] = 128,
    temperature: Annotated[float, typer.Option(help="0 = greedy.")] = 0.0,
    session: Annotated[
        str | None, typer.Option(help="Continue this session id (default: a new one).")
    ] = None,
) -> None:
    """Talk to the pipeline: answers stream in as they are generated; /exit or Ctrl-D ends."""
    import uuid

    from rich.console import Console

    from kinfer.infra.terminal_chat import run_chat

    run_chat(
        _settings(_over(FAIL_FAST, given)).client_config(),
        Console(),
        session or uuid.uuid4().hex[:12],
        SamplingParams(max_tokens=max_tokens, temperature=temperature),
    )


@app.command()
@_friendly
@with_knobs(*section_knobs("admission"), *shared_knobs(["metrics_port"]))
def admission(given: Given) -> None:
    """Run the admission stage as a Faust worker: validation, limits, breakers, cache, routing."""
    import faust

    from kinfer.streams.app import create_app

    settings = _settings(given)
    _serve_metrics(settings.metrics_port)
    faust_app = create_app(settings.admission_config())
    # Faust's INFO lines (every rebalance, every table) drown kinfer's own; DEBUG asks for them.
    faust_level = "INFO" if settings.log_level == "DEBUG" else "WARNING"
    worker = faust.Worker(faust_app, loglevel=faust_level, quiet=True)
    worker.execute_from_commandline()


@app.command()
@_friendly
@with_knobs(*section_knobs("worker"), *shared_knobs(["region", "metrics_port"]))
def worker(
    given: Given,
    standby: Annotated[
        bool,
        typer.Option(
            "--standby", help="Load and warm the model; join the group only when `kinfer pool` promotes."
        ),
    ] = False,
) -> None:
    """Run an inference worker: consume dispatched requests, batch them continuously, reply.

    With --tensor-parallel / --pipeline-parallel the worker is a group of ranks serving one
    model together; rank 0 alone talks to Kafka (docs: guides/parallel.md)."""
    import os

    from kinfer.consumers.engine import load_runner
    from kinfer.consumers.engine.runner import RankGroupLost
    from kinfer.infra import worker_ranks
    from kinfer.infra.engine_choice import engine_for, model_for
    from kinfer.infra.models import ModelStore

    settings = _settings(given)
    try:
        config = settings.worker_config()
        config = settings.worker_config(**worker_ranks.torchrun_overrides(config, os.environ))
        config = engine_for(config)
        if config.rank in (None, 0):
            _serve_metrics(settings.metrics_port)
        local = model_for(config, ModelStore(settings.model_root))
        served = config.model if local != config.model else None  # a pulled model keeps its name
        if config.layout.parallel:
            worker_ranks.serve(config, local, served, standby=standby)
            return
        runner = load_runner(
            local,
            engine=config.engine,
            device=config.device,
            dtype=config.dtype,
            quantize=config.quantize,
            served_name=served,
            threads=config.threads,
            max_batch_tokens=config.max_batch_tokens,
            max_batch_requests=config.max_batch_requests,
            engine_url=config.engine_url,
            engine_api_key=config.engine_api_key.get_secret_value() if config.engine_api_key else None,
        )
    except ValueError as exc:
        typer.echo(f"error [invalid_settings]: {exc}", err=True)
        raise typer.Exit(2) from exc
    except RankGroupLost as exc:
        typer.echo(f"error [unavailable]: {exc}", err=True)
        raise typer.Exit(1) from exc
    worker_ranks.run_worker(config, runner, standby=standby)


@app.command()
@_friendly
@with_knobs(*section_knobs("gateway"))
def gateway(given: Given) -> None:
    """Serve the OpenAI-compatible HTTP API; every call becomes a Kafka request."""
    import uvicorn

    from kinfer.producers.gateway.app import create_app

    settings = _settings(given)
    config = settings.gateway_config()
    if not config.api_keys and not config.allow_anonymous:
        typer.echo(
            "warning: no KINFER_GATEWAY__API_KEYS and anonymous calls refused: every call will get 401",
            err=True,
        )
    client_config = settings.gateway_client_config(timeout_s=config.timeout_s)
    uvicorn.run(create_app(config, client_config), host=config.host, port=config.port, log_level="warning")


@app.command()
@_friendly
@with_knobs(*section_knobs("pool"), *shared_knobs(["region", "metrics_port"]))
def pool(given: Given) -> None:
    """Run the warm-pool controller: promote standby workers on lag, release idle ones."""
    import threading

    from kinfer.consumers.pool.controller import PoolController

    settings = _settings(given)
    _serve_metrics(settings.metrics_port)
    controller = PoolController(
        kafka=settings.role_kafka("tuner"),
        redis_url=settings.role_redis("tuner"),
        prefix=settings.topic_prefix,
        region=settings.region,
        group=settings.worker_config().consumer_group,
        cfg=settings.pool_config(),
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    controller.run(stop)


@app.command()
@_friendly
def demo(
    requests: Annotated[int, typer.Option(help="How many requests to send.")] = 48,
    max_tokens: Annotated[int, typer.Option(help="New tokens per request.")] = 24,
) -> None:
    """Start the stack, admission and a worker; send requests; print answers and latency; stop."""
    from kinfer.infra.demo import run_demo

    run_demo(_settings(), requests=requests, max_tokens=max_tokens)


@app.command()
@_friendly
def bench(
    names: Annotated[
        list[str] | None, typer.Argument(help="Benchmarks to run (default: all); see benchmarks/suite.py.")
    ] = None,
) -> None:
    """Run the benchmarks against private stacks: a progress bar each, then a table; JSON, PNG
    and a log per benchmark under benchmarks/results/. Needs a kinfer checkout (benchmarks/
    is not installed with the package)."""
    checkout = Path(__file__).resolve().parent.parent
    if not (checkout / "benchmarks" / "suite.py").exists():
        message = "kinfer bench needs a kinfer checkout (benchmarks/ is not installed)"
        typer.echo(f"error [unavailable]: {message}", err=True)
        raise typer.Exit(2)
    # benchmarks/ is the checkout's, not the package's: run it there, as `make bench` does.
    argv = [sys.executable, "-m", "benchmarks.suite", *(names or [])]
    suite = subprocess.run(argv, cwd=checkout, check=False)
    raise typer.Exit(suite.returncode)


def _over(defaults: Given, given: Given) -> Given:
    """A command's own defaults under what was given."""
    sections = {*defaults, *given}
    return {section: {**defaults.get(section, {}), **given.get(section, {})} for section in sections}


def _serve_metrics(port: int) -> None:
    if port:
        from prometheus_client import start_http_server

        start_http_server(port, addr="127.0.0.1")


def main() -> None:
    app(prog_name="kinfer")


if __name__ == "__main__":
    main()
