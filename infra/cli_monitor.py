"""`kinfer monitor`: the live view (``infra/monitor.py``) at a terminal."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from kinfer.infra.cli_common import friendly


@friendly
def monitor(
    url: Annotated[
        list[str],
        typer.Option(
            "--url",
            help="A kinfer process's /metrics URL (repeat it: admission, workers, pool, gateway; "
            "local or remote).",
        ),
    ],
    interval_s: Annotated[
        float, typer.Option("--interval-s", min=0.2, help="Seconds between refreshes.")
    ] = 2.0,
    once: Annotated[
        bool, typer.Option("--once", help="Print one view (over one interval) and exit.")
    ] = False,
) -> None:
    """A live view of a pipeline per region: throughput, p50/p99, errors, batch size,
    utilisation, lag, open breakers, rate limiting, cache hit rate and the tuner's actions."""
    from rich.console import Console
    from rich.live import Live

    from kinfer.infra.monitor import fetch, render, view

    console = Console()
    before, _ = fetch(url)
    taken = time.monotonic()
    if once:
        time.sleep(interval_s)
        after, problems = fetch(url)
        console.print(render(view(before, after, time.monotonic() - taken, problems)))
        return
    with Live(console=console, auto_refresh=False) as live:
        try:
            while True:
                time.sleep(interval_s)
                after, problems = fetch(url)
                now = time.monotonic()
                live.update(render(view(before, after, now - taken, problems)), refresh=True)
                before, taken = after, now
        except KeyboardInterrupt:
            return
