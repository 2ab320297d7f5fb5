"""The `kinfer` command line: the stack, the stages, the models, and a client."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import typer

from infra import cli_stack
from infra.cli_common import friendly as _friendly
from infra.cli_common import settings_from as _settings
from infra.cli_models import models_app
from schemas import SamplingParams

app = typer.Typer(no_args_is_help=True, add_completion=False, help="LLM inference as a Kafka pipeline.")
cli_stack.register(app)
app.add_typer(models_app, name="models")

MODEL_OPTION = typer.Option(help="Model to ask for (default: whatever the region's workers serve).")
CHECK_OPTION = typer.Option(help="Fail at once when no admission or worker is running.")


@app.command()
@_friendly
def submit(
    prompt: str,
    max_tokens: Annotated[int, typer.Option(help="Most new tokens.")] = 32,
    temperature: Annotated[float, typer.Option(help="0 = greedy.")] = 0.0,
    seed: Annotated[int | None, typer.Option(help="Seed for sampling.")] = None,
    raw: Annotated[bool, typer.Option("--raw", help="Continue the text instead of answering it.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the answer.")] = 60.0,
    tenant: Annotated[str | None, typer.Option(help="Tenant to send as.")] = None,
    model: Annotated[str | None, MODEL_OPTION] = None,
    check: Annotated[bool, CHECK_OPTION] = True,
) -> None:
    """Send one request through the pipeline and print the answer.

    The prompt is sent as one user message, answered through the model's chat template;
    --raw sends it as plain text to continue.
    """
    from producers import AsyncClient, ChatMessage

    settings = _settings(tenant=tenant)
    config = settings.client_config(timeout_s=timeout, check_consumers=check, model=model)

    async def run() -> str:
        async with AsyncClient(config) as client:
            sampling = SamplingParams(max_tokens=max_tokens, temperature=temperature, seed=seed)
            asked = prompt if raw else [ChatMessage("user", prompt)]
            result = await client.generate(asked, sampling=sampling)
            return result.text

    typer.echo(asyncio.run(run()))


@app.command("chat")
@_friendly
def chat_command(
    max_tokens: Annotated[int, typer.Option(help="Most new tokens per answer.")] = 128,
    temperature: Annotated[float, typer.Option(help="0 = greedy.")] = 0.0,
    session: Annotated[
        str | None, typer.Option(help="Continue this session id (default: a new one).")
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Tenant to send as.")] = None,
    model: Annotated[str | None, MODEL_OPTION] = None,
    check: Annotated[bool, CHECK_OPTION] = True,
) -> None:
    """Talk to the pipeline: answers stream in as they are generated; /exit or Ctrl-D ends."""
    import uuid

    from rich.console import Console

    from infra.terminal_chat import run_chat

    settings = _settings(tenant=tenant)
    run_chat(
        settings.client_config(check_consumers=check, model=model),
        Console(),
        session or uuid.uuid4().hex[:12],
        SamplingParams(max_tokens=max_tokens, temperature=temperature),
    )


@app.command()
@_friendly
def admission(
    tiers_file: Annotated[
        Path | None, typer.Option(help="TOML tiers and tenants (reloaded on change).")
    ] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus port; 0 = off.")] = None,
) -> None:
    """Run the admission stage as a Faust worker: validation, limits, breakers, cache, routing."""
    import faust

    from streams.app import create_app

    settings = _settings(tiers_file=tiers_file, metrics_port=metrics_port)
    config = settings.admission_config()
    _serve_metrics(config.metrics_port)
    faust_app = create_app(config)
    # Faust's INFO lines (every rebalance, every table) drown kinfer's own; DEBUG asks for them.
    faust_level = "INFO" if settings.log_level == "DEBUG" else "WARNING"
    worker = faust.Worker(faust_app, loglevel=faust_level, quiet=True)
    worker.execute_from_commandline()


@app.command(
    epilog="Connection and topics come from KINFER_BOOTSTRAP_SERVERS, KINFER_REDIS_URL (response cache "
    "writes) and KINFER_TOPIC_PREFIX. Every option also reads KINFER_<OPTION> (e.g. KINFER_MAX_WAIT_MS)."
)
@_friendly
def worker(
    region: Annotated[str | None, typer.Option(help="Serve <prefix>.dispatch.<region>.")] = None,
    model: Annotated[
        str | None, typer.Option(help="kinfer-tiny; echo and fail are torch-free test models.")
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto (CUDA when present), cpu, cuda, cuda:N.")] = None,
    dtype: Annotated[
        str | None, typer.Option(help="float32 or bfloat16 (CPU); float16/bfloat16 (CUDA).")
    ] = None,
    quantize: Annotated[str | None, typer.Option(help="none, or int8 (dynamic, CPU).")] = None,
    max_batch_requests: Annotated[int | None, typer.Option(help="Most sequences decoding together.")] = None,
    max_batch_tokens: Annotated[
        int | None, typer.Option(help="Token budget of the running batch (prompt + max new, summed).")
    ] = None,
    max_wait_ms: Annotated[
        int | None,
        typer.Option(help="An idle worker waits this long to fill a batch once a request is there."),
    ] = None,
    group_id: Annotated[
        str | None, typer.Option(help="Consumer group; default <prefix>-workers-<region>.")
    ] = None,
    worker_id: Annotated[
        str | None, typer.Option(help="Unique per process; part of the transactional id.")
    ] = None,
    session_timeout_ms: Annotated[
        int | None, typer.Option(help="A crashed worker's partitions move after this long.")
    ] = None,
    transaction_timeout_ms: Annotated[
        int | None, typer.Option(help="The broker aborts a dead worker's open transaction after this long.")
    ] = None,
    cache_ttl_s: Annotated[int | None, typer.Option(help="Lifetime of cached deterministic answers.")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus /metrics port; 0 = off.")] = None,
    telemetry_interval_s: Annotated[
        float | None, typer.Option(help="How often utilisation and tokens/s are sampled.")
    ] = None,
    standby: Annotated[
        bool,
        typer.Option(
            "--standby", help="Load and warm the model; join the group only when `kinfer pool` promotes."
        ),
    ] = False,
) -> None:
    """Run an inference worker: consume dispatched requests, batch them continuously, reply."""
    from consumers.engine import load_runner
    from consumers.worker import InferenceWorker

    settings = _settings(
        region=region,
        model=model,
        device=device,
        dtype=dtype,
        quantize=quantize,
        max_batch_requests=max_batch_requests,
        max_batch_tokens=max_batch_tokens,
        max_wait_ms=max_wait_ms,
        cache_ttl_s=cache_ttl_s,
        metrics_port=metrics_port,
        telemetry_interval_s=telemetry_interval_s,
    )
    extra = {
        "group_id": group_id,
        "worker_id": worker_id,
        "session_timeout_ms": session_timeout_ms,
        "transaction_timeout_ms": transaction_timeout_ms,
    }
    config = settings.worker_config(**{k: v for k, v in extra.items() if v is not None})
    _serve_metrics(config.metrics_port)
    from infra.models import ModelStore
    from infra.models.pull import ensure_local

    try:
        local = ensure_local(config.model, ModelStore(settings.model_root))
        runner = load_runner(
            local,
            device=config.device,
            dtype=config.dtype,
            quantize=config.quantize,
            served_name=config.model if local != config.model else None,  # a pulled model keeps its name
        )
    except ValueError as exc:
        typer.echo(f"error [invalid_settings]: {exc}", err=True)
        raise typer.Exit(2) from exc
    inference = InferenceWorker(config, runner)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: inference.stop())
    inference.run(standby=standby)


@app.command()
@_friendly
def gateway(
    port: Annotated[int | None, typer.Option(help="HTTP port (KINFER_GATEWAY_PORT).")] = None,
    host: Annotated[str | None, typer.Option(help="Listen address (KINFER_GATEWAY_HOST).")] = None,
) -> None:
    """Serve the OpenAI-compatible HTTP API; every call becomes a Kafka request."""
    import uvicorn

    from producers.gateway.app import create_app

    settings = _settings(gateway_port=port, gateway_host=host)
    config = settings.gateway_config()
    if not config.api_keys and not config.allow_anonymous:
        typer.echo(
            "warning: no KINFER_API_KEYS and anonymous calls refused: every call will get 401", err=True
        )
    client_config = settings.client_config(timeout_s=config.timeout_s)
    uvicorn.run(create_app(config, client_config), host=config.host, port=config.port, log_level="warning")


@app.command()
@_friendly
def pool(
    region: Annotated[str | None, typer.Option(help="The region whose workers this controls.")] = None,
    lag_threshold: Annotated[
        int, typer.Option(help="Unprocessed records that call for another worker.")
    ] = 100,
    idle_release_s: Annotated[float, typer.Option(help="Release an active worker idle this long.")] = 300.0,
    min_active: Annotated[int, typer.Option(help="Never release below this many active workers.")] = 1,
    interval_s: Annotated[float, typer.Option(help="How often to look.")] = 1.0,
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus /metrics port; 0 = off.")] = None,
) -> None:
    """Run the warm-pool controller: promote standby workers on lag, release idle ones."""
    import threading

    from consumers.pool.controller import PoolController
    from consumers.pool.policy import PoolConfig

    settings = _settings(region=region, metrics_port=metrics_port)
    _serve_metrics(settings.metrics_port)
    worker_cfg = settings.worker_config()
    cfg = PoolConfig(
        lag_threshold=lag_threshold, idle_release_ms=int(idle_release_s * 1000), min_active=min_active
    )
    controller = PoolController(
        bootstrap=settings.bootstrap,
        redis_url=settings.redis,
        prefix=settings.topic_prefix,
        region=settings.region,
        group=worker_cfg.consumer_group,
        cfg=cfg,
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    controller.run(stop, interval_s)


@app.command()
@_friendly
def demo(
    requests: Annotated[int, typer.Option(help="How many requests to send.")] = 48,
    max_tokens: Annotated[int, typer.Option(help="New tokens per request.")] = 24,
) -> None:
    """Start the stack, admission and a worker; send requests; print answers and latency; stop."""
    from infra.demo import run_demo

    run_demo(_settings(), requests=requests, max_tokens=max_tokens)


def _serve_metrics(port: int) -> None:
    if port:
        from prometheus_client import start_http_server

        start_http_server(port, addr="127.0.0.1")


def main() -> None:
    app(prog_name="kinfer")


if __name__ == "__main__":
    main()
