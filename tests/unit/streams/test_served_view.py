"""Admission's view of what live workers serve: refuse only what is known to be unserved,
route to serving regions first, and know nothing from silence."""

from __future__ import annotations

from kinfer.schemas.serving import LIVE_FOR_MS, WorkerHeartbeat
from kinfer.streams.serving import ServedView

NOW = 1_000_000


def beat(model: str, age_ms: int = 0, state: str = "active") -> WorkerHeartbeat:
    return WorkerHeartbeat(state=state, last_seen_ms=NOW - age_ms, model=model)  # type: ignore[arg-type]


def view(**regions: dict[str, WorkerHeartbeat]) -> ServedView:
    served = ServedView()
    served.update({r.replace("_", "-"): beats for r, beats in regions.items()}, NOW)
    return served


def test_with_no_heartbeats_nothing_is_refused_and_routes_stay_as_hashed() -> None:
    served = view()
    assert not served.unserved("anything") and not served.unserved(None)
    assert served.prefer_serving(["eu-central", "us-west"], "m") == ["eu-central", "us-west"]


def test_a_model_no_live_worker_serves_is_refused_and_one_that_is_served_is_not() -> None:
    served = view(us_west={"w1": beat("smollm2"), "w2": beat("old", age_ms=LIVE_FOR_MS + 1)})
    assert served.models() == {"smollm2"}
    assert served.unserved("old") and served.unserved("gpt-4")
    assert not served.unserved("smollm2") and not served.unserved(None)


def test_standby_workers_count_as_serving() -> None:
    assert view(us_west={"w1": beat("m", state="standby")}).models() == {"m"}


def test_regions_that_serve_the_model_come_first_in_ring_order() -> None:
    served = view(us_west={"w1": beat("a")}, ap_southeast={"w2": beat("b")}, eu_central={})
    ring = ["eu-central", "ap-southeast", "us-west"]
    assert served.prefer_serving(ring, "a") == ["us-west", "eu-central", "ap-southeast"]
    assert served.prefer_serving(ring, "b") == ["ap-southeast", "eu-central", "us-west"]
    assert served.prefer_serving(ring, None) == ["ap-southeast", "us-west", "eu-central"]
    assert served.prefer_serving(["eu-central"], "a") == ["eu-central"]  # a pinned tenant keeps its region


def test_a_drained_worker_serves_nothing() -> None:
    served = view(us_west={"w1": beat("smollm2", state="drained"), "w2": beat("tiny")})
    assert served.models() == {"tiny"} and served.unserved("smollm2")


def test_a_region_fallen_silent_at_once_keeps_its_models_until_its_workers_can_beat_again() -> None:
    """After a Redis outage every heartbeat is stale at once: the region is not taken as empty
    (its users sent to regions with no worker) before its workers had time to beat again."""
    served = view(us_west={"w1": beat("m")})
    last = {"us-west": {"w1": beat("m")}}  # its last beat, at NOW
    later = NOW + 30_000  # the first look after a 30 s outage
    served.update(last, later)
    assert served.models() == {"m"}, "kept: silent only since this look"
    served.update(last, later + LIVE_FOR_MS - 1)
    assert served.models() == {"m"}
    served.update(last, later + LIVE_FOR_MS)
    assert served.models() == set(), "silent for LIVE_FOR_MS since: its workers are gone"


def test_a_region_that_beats_again_is_served_and_its_silence_forgotten() -> None:
    served = view(us_west={"w1": beat("m")})
    served.update({"us-west": {"w1": beat("m")}}, NOW + 30_000)
    fresh = WorkerHeartbeat(state="active", last_seen_ms=NOW + 31_000, model="m")
    served.update({"us-west": {"w1": fresh}}, NOW + 31_000)
    served.update({"us-west": {"w1": fresh}}, NOW + 60_000)  # silent again: a new grace
    assert served.models() == {"m"}
