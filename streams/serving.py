"""Admission's view of what live workers serve, from their heartbeats (``schemas.serving``).

It refuses a model nobody serves and routes around regions with no worker, but
only when it knows something: with no heartbeats (workers still loading, Redis
away), requests are admitted and routed as before and wait in Kafka.

A region whose workers all fell silent keeps its models for ``LIVE_FOR_MS`` more from the
first look that found it so: after a Redis outage every heartbeat is stale at once (no worker
could write one), and until the workers beat again (within a second or two) the region would
otherwise look empty and its users' requests routed by the ring to regions with no worker.
A region whose workers really died is routed around that much later.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kinfer.schemas.serving import LIVE_FOR_MS, WorkerHeartbeat, served_models


class ServedView:
    def __init__(self) -> None:
        self._by_region: dict[str, set[str]] = {}
        self._silent_since: dict[str, int] = {}
        """Regions that served something and have had no live heartbeat since then."""

    def update(self, heartbeats: Mapping[str, Mapping[str, WorkerHeartbeat]], now_ms: int) -> None:
        """Replace the view with each region's live models (a silent region's kept a while)."""
        self._by_region = {
            region: self._models(region, beats, now_ms) for region, beats in heartbeats.items()
        }

    def _models(self, region: str, beats: Mapping[str, WorkerHeartbeat], now_ms: int) -> set[str]:
        known = self._by_region.get(region)
        silent = not any(beat.live(now_ms) for beat in beats.values())
        if known and silent and now_ms - self._silent_since.setdefault(region, now_ms) < LIVE_FOR_MS:
            return known
        self._silent_since.pop(region, None)
        return served_models(dict(beats), now_ms)

    def models(self) -> set[str]:
        return set().union(*self._by_region.values())

    def unserved(self, model: str | None) -> bool:
        """True when live workers are known and none of them serves ``model``."""
        served = self.models()
        return model is not None and bool(served) and model not in served

    def prefer_serving(
        self, candidates: Iterable[str], model: str | None, unseen: Iterable[str] = ()
    ) -> list[str]:
        """``candidates`` with the regions that serve ``model`` (any model when None) first,
        each group in its ring order; unchanged when no region serves it. ``unseen``: regions
        whose workers heartbeat elsewhere (linked clusters' peers), taken as serving."""
        ordered, unseen = list(candidates), set(unseen)
        serving = [r for r in ordered if r in unseen or self._serves(r, model)]
        return serving + [r for r in ordered if r not in serving] if serving else ordered

    def _serves(self, region: str, model: str | None) -> bool:
        models = self._by_region.get(region, set())
        return bool(models) if model is None else model in models
