"""`kinfer monitor`: a live view of a pipeline for people at a terminal, read from the same
/metrics every kinfer process exports (any processes, local or remote, by URL).

Two scrapes some seconds apart give rates and the quantiles of what happened between them;
:func:`view` is pure (scrapes in, rows out) and :func:`render` draws them with rich.
"""

from __future__ import annotations

import math
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Group
from rich.table import Table
from rich.text import Text

from kinfer.schemas.errors import SERVER_ERRORS

Key = tuple[str, tuple[tuple[str, str], ...]]
"""A sample: its name and its labels, sorted."""
Scrape = dict[Key, float]
"""Every sample of every process (an ``instance`` label tells them apart)."""


def parse(texts: dict[str, str]) -> Scrape:
    """The samples of several processes' /metrics texts, each labelled with its ``instance``
    (the key it is given under: its URL)."""
    out: Scrape = {}
    for instance, text in texts.items():
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = {**sample.labels, "instance": instance}
                out[(sample.name, tuple(sorted(labels.items())))] = float(sample.value)
    return out


def fetch(urls: Iterable[str], timeout_s: float = 5.0) -> tuple[Scrape, list[str]]:
    """Scrape every URL; (the samples, one line per URL that did not answer)."""
    texts, problems = {}, []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                texts[url] = response.read().decode()
        except OSError as exc:
            problems.append(f"{url}: {exc}")
    return parse(texts), problems


def _sum(scrape: Scrape, name: str, **match: str) -> float:
    return sum(v for (n, labels), v in scrape.items() if n == name and _has(labels, match))


def _has(labels: tuple[tuple[str, str], ...], match: dict[str, str]) -> bool:
    got = dict(labels)
    return all(got.get(k) == v for k, v in match.items())


def _values(scrape: Scrape, name: str, label: str) -> set[str]:
    return {dict(labels)[label] for (n, labels) in scrape if n == name and label in dict(labels)}


def _delta(before: Scrape, after: Scrape, name: str, **match: str) -> float:
    return max(0.0, _sum(after, name, **match) - _sum(before, name, **match))


def quantile(before: Scrape, after: Scrape, name: str, q: float, **match: str) -> float | None:
    """The ``q`` quantile of a histogram's observations between two scrapes (upper bucket
    bound, as Prometheus's histogram_quantile interpolates within it); None without any."""
    bounds = {dict(ls)["le"] for (n, ls) in after if n == f"{name}_bucket" and _has(ls, match)}
    counts = sorted((float(le), _delta(before, after, f"{name}_bucket", **match, le=le)) for le in bounds)
    total = counts[-1][1] if counts else 0.0
    if total <= 0:
        return None
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in counts:
        if count >= q * total:
            if math.isinf(bound):
                return lower_bound
            share = (q * total - lower_count) / max(count - lower_count, 1e-9)
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return None


@dataclass(frozen=True)
class RegionRow:
    region: str
    answers_per_s: float
    p50_s: float | None
    p99_s: float | None
    error_ratio: float | None


@dataclass(frozen=True)
class Flow:
    cancelled: dict[str, float]
    """Cancelled requests in the interval by where they were stopped (queued, dispatched, decoding)."""
    cancel_saved_tokens: float
    """Tokens those cancels spared."""
    band_wait_p99_s: dict[str, float]
    """p99 wait in the workers' fair queues, by priority band."""
    tenant_wait_p99_s: dict[str, float]
    """p99 wait in the workers' fair queues, by tenant (the five longest)."""


@dataclass(frozen=True)
class View:
    seconds: float
    regions: list[RegionRow]
    admitted_per_s: float
    rejected_per_s: dict[str, float]
    """By error code."""
    rate_limited_per_s: dict[str, float]
    """By tier (tenants are not a label of the rejection counter)."""
    cache_hit_ratio: float | None
    mean_batch: float | None
    utilisation: dict[str, float]
    """By device: the mean over workers."""
    waiting: float
    lag: float
    open_breakers: list[str]
    tuner_actions: dict[str, float]
    """Pool actions (promote, release, shorten_wait, restore_wait, drain) in the interval."""
    tuner_totals: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    flow: Flow = field(default_factory=lambda: Flow({}, 0.0, {}, {}))


def view(before: Scrape, after: Scrape, seconds: float, problems: list[str] | None = None) -> View:
    """What happened between two scrapes ``seconds`` apart, and the gauges as of the second."""
    rate = 1 / max(seconds, 1e-9)
    regions = []
    for region in sorted(_values(after, "kinfer_worker_answers_total", "region")):
        answers = _delta(before, after, "kinfer_worker_answers_total", region=region)
        errors = sum(
            _delta(before, after, "kinfer_worker_answers_total", region=region, status=s)
            for s in SERVER_ERRORS
        )
        latency = "kinfer_worker_request_seconds"
        regions.append(
            RegionRow(
                region,
                answers * rate,
                quantile(before, after, latency, 0.5, region=region),
                quantile(before, after, latency, 0.99, region=region),
                errors / answers if answers else None,
            )
        )
    rejected = "kinfer_admission_rejected_total"
    hits = _delta(before, after, "kinfer_admission_cache_total", result="hit")
    lookups = _delta(before, after, "kinfer_admission_cache_total")
    batches = _delta(before, after, "kinfer_worker_batch_size_count")
    utilisation: dict[str, list[float]] = {}
    for (n, ls), value in after.items():
        if n == "kinfer_worker_utilisation":
            utilisation.setdefault(dict(ls)["device"], []).append(value)
    actions = "kinfer_pool_actions_total"
    return View(
        seconds=seconds,
        regions=regions,
        admitted_per_s=_delta(before, after, "kinfer_admission_admitted_total") * rate,
        rejected_per_s={
            c: _delta(before, after, rejected, code=c) * rate
            for c in sorted(_values(after, rejected, "code"))
        },
        rate_limited_per_s={
            t: _delta(before, after, rejected, code="rate_limited", tier=t) * rate
            for t in sorted(_values(after, rejected, "tier"))
            if _sum(after, rejected, code="rate_limited", tier=t)
        },
        cache_hit_ratio=hits / lookups if lookups else None,
        mean_batch=_delta(before, after, "kinfer_worker_batch_size_sum") / batches if batches else None,
        utilisation={d: sum(vs) / len(vs) for d, vs in sorted(utilisation.items())},
        waiting=_sum(after, "kinfer_worker_waiting_requests"),
        lag=_sum(after, "kinfer_pool_lag_records"),
        open_breakers=sorted(
            f"{dict(ls).get('region')}/{dict(ls).get('model')}"
            for (n, ls), v in after.items()
            if n == "kinfer_admission_breaker_state" and dict(ls).get("state") == "open" and v >= 1
        ),
        tuner_actions={
            k: _delta(before, after, actions, kind=k) for k in sorted(_values(after, actions, "kind"))
        },
        tuner_totals={k: _sum(after, actions, kind=k) for k in sorted(_values(after, actions, "kind"))},
        problems=problems or [],
        flow=_flow(before, after),
    )


def _flow(before: Scrape, after: Scrape) -> Flow:
    """Cancels (admission's and the workers') and the fair queue's waits, for :class:`View`."""
    cancelled: dict[str, float] = {}
    for name in ("kinfer_admission_cancelled_total", "kinfer_worker_cancelled_total"):
        for where in sorted(_values(after, name, "where")):
            cancelled[where] = cancelled.get(where, 0.0) + _delta(before, after, name, where=where)
    saved = sum(
        _delta(before, after, n)
        for n in ("kinfer_admission_cancel_saved_tokens_total", "kinfer_worker_cancel_saved_tokens_total")
    )
    wait = "kinfer_worker_queue_wait_seconds"
    bands = {
        b: quantile(before, after, wait, 0.99, band=b)
        for b in sorted(_values(after, f"{wait}_bucket", "band"))
    }
    tenants = {
        t: quantile(before, after, wait, 0.99, tenant=t) for t in _values(after, f"{wait}_bucket", "tenant")
    }
    longest = sorted(((t, w) for t, w in tenants.items() if w is not None), key=lambda tw: -tw[1])[:5]
    return Flow(cancelled, saved, {b: w for b, w in bands.items() if w is not None}, dict(longest))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def render(v: View) -> Group:
    """One refresh of the live view."""
    table = Table(title=f"kinfer monitor (last {v.seconds:.1f} s)", show_header=True, expand=False)
    for column in ("region", "answers/s", "p50", "p99", "server errors"):
        table.add_column(column, justify="right" if column != "region" else "left")
    for row in v.regions:
        table.add_row(
            row.region, f"{row.answers_per_s:.1f}", _ms(row.p50_s), _ms(row.p99_s), _pct(row.error_ratio)
        )
    rejected = ", ".join(f"{c} {r:.1f}/s" for c, r in v.rejected_per_s.items() if r) or "none"
    limited = ", ".join(f"{t} {r:.1f}/s" for t, r in v.rate_limited_per_s.items()) or "none"
    utilisation = ", ".join(f"{d} {u:.0%}" for d, u in v.utilisation.items()) or "-"
    actions = ", ".join(f"{k} +{n:g}" for k, n in v.tuner_actions.items() if n) or "none"
    totals = ", ".join(f"{k} {n:g}" for k, n in v.tuner_totals.items() if n) or "none"
    mean_batch = "-" if v.mean_batch is None else f"{v.mean_batch:.1f}"
    breakers = ", ".join(v.open_breakers) or "none"
    cancels = ", ".join(f"{w} {n:g}" for w, n in v.flow.cancelled.items() if n) or "none"
    bands = ", ".join(f"{b}: {_ms(w)}" for b, w in v.flow.band_wait_p99_s.items()) or "-"
    tenants = ", ".join(f"{t}: {_ms(w)}" for t, w in v.flow.tenant_wait_p99_s.items()) or "-"
    caption = [
        f"admission  admitted {v.admitted_per_s:.1f}/s   rejected {rejected}",
        f"           rate-limited (by tier) {limited}",
        f"           cache hit {_pct(v.cache_hit_ratio)}   open breakers: {breakers}",
        f"workers    mean batch {mean_batch}   utilisation {utilisation}   waiting {v.waiting:g}",
        f"pool       lag {v.lag:g} records",
        f"tuner      this interval: {actions}   so far: {totals}",
        f"flow       cancelled {cancels}   tokens spared {v.flow.cancel_saved_tokens:g}",
        f"           queue wait p99 by band {bands}   longest tenants {tenants}",
        *(f"[red]unreachable: {p}[/red]" for p in v.problems),
    ]
    return Group(table, Text.from_markup("\n".join(caption)))
