"""`kinfer regions`: regions as linked clusters (`kinfer up --regions`)."""

from __future__ import annotations

from typing import Annotated

import typer

from kinfer.infra.cli_common import friendly, settings_from

regions_app = typer.Typer(help="Regions as linked clusters: residency audit.", no_args_is_help=True)


@regions_app.command()
@friendly
def audit(
    timeout_s: Annotated[
        float, typer.Option("--timeout-s", help="Longest one cluster's scan may take.")
    ] = 60.0,
) -> None:
    """Scan every cluster and Redis for records of a resident tenant (the tier file's
    `residency`) outside its region; exit 1 when any is found."""
    from kinfer.infra.residency_audit import audit as scan
    from kinfer.infra.residency_audit import pinned_tenants
    from kinfer.streams.limits.tiers import ReloadingTierTable

    settings = settings_from()
    if not settings.linked:
        typer.echo(
            "error [invalid_request]: not linked clusters (start them with `kinfer up --regions`)", err=True
        )
        raise typer.Exit(2)
    pinned = pinned_tenants(ReloadingTierTable(settings.admission_config().tiers_file).table.tenants)
    if not pinned:
        typer.echo("no resident tenants in the tier file: nothing to audit")
        return
    findings = scan(settings, pinned, timeout_s)
    for f in findings:
        typer.echo(f"outside  {f.tenant:16} in {f.region:13} {f.where}  ({f.why})")
    clusters = ", ".join(settings.clusters)
    typer.echo(
        f"{len(findings)} record(s) of {len(pinned)} resident tenant(s) outside their region ({clusters})"
    )
    if findings:
        raise typer.Exit(1)
