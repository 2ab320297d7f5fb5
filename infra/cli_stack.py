"""`kinfer up / down / status / logs / fetch / topics`: the local pipeline as one thing."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Annotated

import typer

from kinfer.infra.cli_common import friendly, settings_from
from kinfer.infra.cli_options import Given, shared_knobs, with_knobs
from kinfer.infra.settings import KinferSettings

STAGE_OR_SERVICE = ("admission", "worker", "gateway", "kafka", "redis")


def register(app: typer.Typer) -> None:
    for command in (up, down, status, logs, fetch, topics):
        app.command()(command)


@friendly
@with_knobs(*shared_knobs(["startup_timeout_s", "kafka_brokers"]))
def up(
    given: Given,
    services_only: Annotated[
        bool, typer.Option("--services-only", help="Kafka, Redis and topics only; no stages.")
    ] = False,
    secure: Annotated[
        bool,
        typer.Option(
            "--secure",
            help="SASL_SSL with a user per role, ACLs, signed tenants, private replies, Redis ACL "
            "users (docs: guides/security.md). Kept: later commands on this state dir use it.",
        ),
    ] = False,
    regions: Annotated[
        str | None,
        typer.Option(
            "--regions",
            help="Regions as clusters, hub first (e.g. us-west,eu-central,ap-southeast): a KRaft "
            "cluster and a Redis per region, MirrorMaker 2 between them, admission and a worker per "
            "region (docs: guides/regions.md). Kept: later commands use the same regions.",
        ),
    ] = None,
) -> None:
    """Start the whole local pipeline: Kafka (KRaft), Redis and topics, then admission, an
    inference worker and the gateway, each supervised in the background (`kinfer down` stops all).

    Nothing is started for KINFER_BOOTSTRAP_SERVERS / KINFER_REDIS_URL: those are used as they are.
    """
    from kinfer.infra.engine_choice import engine_for, model_for
    from kinfer.infra.models import ModelStore
    from kinfer.infra.stack import local, pipeline
    from kinfer.infra.stack import regions as linked

    settings = settings_from(given)
    if secure:
        settings = settings.model_copy(update={"secure": True})
    if regions:
        settings = linked.link(settings, [r.strip() for r in regions.split(",") if r.strip()])
    places = list(linked.each_region(settings)) if settings.linked else [settings]
    created = linked.up(settings) if settings.linked else local.up(settings)
    for place in places:
        for svc in local.status(place):
            typer.echo(f"{_where(place)}{svc.name:9} {svc.state:9} {svc.address}")
    typer.echo(f"topics created: {len(created)}" if created else "topics: all present")
    if settings.linked:
        typer.echo(f"mirror-maker running  {len(settings.clusters) * (len(settings.clusters) - 1)} flows")
    if services_only:
        return
    worker = engine_for(settings.worker_config())
    served = model_for(worker, ModelStore(settings.model_root))
    typer.echo(f"model {worker.model} on {worker.engine}: {served}")
    for place in places:
        pipeline.start_all(place)
    took = max(pipeline.wait_until_up(place, settings.startup_timeout_s) for place in places)
    for place in places:
        for stage in pipeline.stages(place):
            st = stage.status()
            typer.echo(f"{_where(place)}{st.name:9} {st.state:9} pid {st.pid}  log {st.log_file}")
    gw = settings.gateway
    key = pipeline.dev_api_key(settings) if not gw.api_keys else "(your KINFER_GATEWAY__API_KEYS)"
    typer.echo(f"serving after {took:.1f}s")
    typer.echo(f"gateway   http://{gw.host}:{gw.port}/v1   API key: {key}")
    typer.echo('try:      kinfer submit "What is the capital of France?"   or   kinfer chat')


@friendly
def down() -> None:
    """Stop everything `kinfer up` started: the stages first (they drain), then Redis and Kafka."""
    from kinfer.infra.stack import local, pipeline
    from kinfer.infra.stack import regions as linked

    settings = settings_from()
    if settings.linked:
        stopped = linked.at_once(settings, lambda p: [f"{n}@{p.region}" for n in pipeline.stop_all(p)])
        stopped += linked.down(settings)
    else:
        stopped = pipeline.stop_all(settings) + local.down(settings)
    typer.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@friendly
def status() -> None:
    """Every part: broker(s), Redis, the stages `up` started, consumer groups (members, lag),
    live workers and their models, open circuit breakers."""
    from kinfer.infra.stack import regions as linked

    settings = settings_from()
    if not settings.linked:
        _status_of(settings)
        return
    for place in linked.each_region(settings):
        typer.echo(f"== region {place.region}{' (hub)' if place.region == settings.hub else ''}")
        _status_of(place)
    mirror = linked.mirror_maker(settings)
    typer.echo(f"== mirror-maker {'running' if mirror.running() else 'stopped'}  log {mirror.log_file}")
    for flow in linked.flow_status(settings):
        age = "no heartbeats" if flow.heartbeat_age_s is None else f"lag {flow.heartbeat_age_s:.1f}s"
        typer.echo(f"flow      {flow.flow.source:>13} -> {flow.flow.target:13} {age}")


def _status_of(settings: KinferSettings) -> None:
    from kinfer.infra.inspect import report
    from kinfer.infra.stack import local, pipeline

    for svc in local.status(settings):
        typer.echo(f"{svc.name:9} {svc.state:11} {svc.address}")
    for stage in pipeline.stages(settings):
        st = stage.status()
        detail = f"pid {st.pid}, up {_duration(st.uptime_s)}" if st.pid is not None else f"log {st.log_file}"
        typer.echo(f"{st.name:9} {st.state:11} {detail}")
    found = report(settings)
    for g in found.groups:
        lag = "?" if g.lag is None else str(g.lag)
        typer.echo(f"group     {g.group:34} {g.state:12} members {g.members}  lag {lag} on {g.topic}")
    for region, beats in found.workers.items():
        for worker_id, beat in beats.items():
            why = f" ({beat.drained_reason})" if beat.state == "drained" and beat.drained_reason else ""
            typer.echo(f"worker    {region:13} {worker_id:34} {beat.state:8} model {beat.model}{why}")
    opened = ", ".join(found.open_breakers) or "none"
    typer.echo(f"breakers  open: {opened}")
    for problem in found.problems:
        typer.echo(f"unreadable: {problem}", err=True)


@friendly
def logs(
    stage: Annotated[str, typer.Argument(help=f"One of {', '.join(STAGE_OR_SERVICE)}.")] = "worker",
    lines: Annotated[int, typer.Option("-n", "--lines", help="How many lines from the end.")] = 40,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing new lines.")] = False,
) -> None:
    """Print the end of a stage's (or service's) log."""
    from kinfer.infra.stack import local, pipeline
    from kinfer.infra.stack.process import log_tail

    settings = settings_from()
    files = {s.name: s.log_file for s in pipeline.stages(settings)}
    files["kafka"] = local.kafka_cluster(settings).nodes[0].config.log_file
    files["redis"] = local.redis_server(settings).log_file
    if stage not in files:
        typer.echo(f"error [invalid_request]: no log for {stage!r}; one of {', '.join(files)}", err=True)
        raise typer.Exit(2)
    path = files[stage]
    typer.echo(log_tail(path, lines))
    if not follow or not path.exists():
        return
    with path.open(errors="replace") as f:
        f.seek(0, 2)
        while True:
            line = f.readline()
            if line:
                typer.echo(line, nl=False)
            else:
                time.sleep(0.3)


@friendly
def fetch() -> None:
    """Resolve the Kafka broker jars with Maven into the state dir (`up` does this when needed)."""
    from kinfer.infra.stack import local
    from kinfer.infra.stack.kafka import find_java, resolve_jars

    settings = settings_from()
    find_java()
    libs = local.kafka_cluster(settings).libs_dir
    resolve_jars(libs)
    typer.echo(f"Kafka jars in {libs}")


@friendly
def topics(
    acls: Annotated[
        bool,
        typer.Option(
            "--acls",
            help="Also create the ACLs of every role (kinfer-admission, -worker, -tuner, -gateway) and "
            "tenant (--tenant); implied on a `kinfer up --secure` stack, which also makes the users.",
        ),
    ] = False,
    tenant: Annotated[
        list[str] | None,
        typer.Option("--tenant", help="A tenant whose private reply topic and ACLs to make."),
    ] = None,
) -> None:
    """Create missing topics on the configured cluster (idempotent), and on a secured one the
    ACLs that say which role and tenant may touch which topic."""
    from kinfer.infra.acls import ensure_acls, role_bindings, tenant_bindings
    from kinfer.infra.stack import local
    from kinfer.infra.topics import ensure_topics
    from kinfer.schemas import TopicNames

    settings = settings_from()
    layout = local.topic_layout(settings)
    layout = replace(layout, tenants=tuple(dict.fromkeys([*layout.tenants, *(tenant or [])])))
    created = ensure_topics(settings.kafka, layout.specs())
    typer.echo("\n".join(created) if created else "all topics present")
    if settings.secured is not None:
        local.secure_cluster(settings)
        typer.echo("users, ACLs and tenant keys in place")
    elif acls:
        names = TopicNames(settings.topic_prefix)
        bindings = role_bindings(names, settings.admission_config().faust_id)
        for name in layout.tenants:
            bindings += tenant_bindings(names, name)
        ensure_acls(settings.kafka, bindings)
        typer.echo(f"{len(bindings)} ACLs in place")


def _where(settings: KinferSettings) -> str:
    """A line's region prefix on linked clusters."""
    return f"{settings.region:13} " if settings.linked else ""


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
