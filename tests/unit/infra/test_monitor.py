"""The live view's arithmetic on two scrapes of made-up processes (no services)."""

from __future__ import annotations

from rich.console import Console

from kinfer.infra.monitor import parse, render, view

WORKER_BEFORE = """
kinfer_worker_answers_total{status="ok",region="us-west",model="m"} 100
kinfer_worker_answers_total{status="internal",region="us-west",model="m"} 0
kinfer_worker_request_seconds_bucket{region="us-west",le="0.1"} 50
kinfer_worker_request_seconds_bucket{region="us-west",le="1.0"} 100
kinfer_worker_request_seconds_bucket{region="us-west",le="+Inf"} 100
kinfer_worker_batch_size_sum 300
kinfer_worker_batch_size_count 100
kinfer_worker_utilisation{device="cpu"} 0.5
kinfer_worker_waiting_requests 0
"""
WORKER_AFTER = """
kinfer_worker_answers_total{status="ok",region="us-west",model="m"} 190
kinfer_worker_answers_total{status="internal",region="us-west",model="m"} 10
kinfer_worker_request_seconds_bucket{region="us-west",le="0.1"} 140
kinfer_worker_request_seconds_bucket{region="us-west",le="1.0"} 200
kinfer_worker_request_seconds_bucket{region="us-west",le="+Inf"} 200
kinfer_worker_batch_size_sum 700
kinfer_worker_batch_size_count 200
kinfer_worker_utilisation{device="cpu"} 0.7
kinfer_worker_waiting_requests 3
"""
ADMISSION_AFTER = """
kinfer_admission_admitted_total{tier="free",region="us-west"} 100
kinfer_admission_rejected_total{tier="free",code="rate_limited"} 20
kinfer_admission_cache_total{result="hit",tenant="a"} 9
kinfer_admission_cache_total{result="miss",tenant="a"} 1
kinfer_admission_breaker_state{region="eu-central",model="m",state="open"} 1
kinfer_pool_actions_total{kind="shorten_wait"} 2
"""


def test_rates_quantiles_and_gauges_between_two_scrapes() -> None:
    before = parse({"w1": WORKER_BEFORE, "w2": WORKER_BEFORE.replace("0.5", "0.3")})
    after = parse({"w1": WORKER_AFTER, "w2": WORKER_AFTER.replace("0.7", "0.3"), "adm": ADMISSION_AFTER})
    v = view(before, after, 10.0)
    (row,) = v.regions
    assert row.region == "us-west" and row.answers_per_s == 2 * 100 / 10
    assert row.error_ratio == 20 / 200
    assert row.p50_s is not None and abs(row.p50_s - 0.1 * (100 / 180)) < 1e-9  # within the first bucket
    assert row.p99_s is not None and 0.1 < row.p99_s <= 1.0
    assert v.mean_batch == (800 / 200) and v.utilisation == {"cpu": 0.5} and v.waiting == 6
    assert v.admitted_per_s == 10 and v.rate_limited_per_s == {"free": 2.0}
    assert v.cache_hit_ratio == 0.9 and v.open_breakers == ["eu-central/m"]
    assert v.tuner_actions == {"shorten_wait": 2} and v.tuner_totals == {"shorten_wait": 2}


def test_the_view_renders_every_part_and_says_what_did_not_answer() -> None:
    v = view(parse({}), parse({"w": WORKER_AFTER}), 2.0, ["http://gone:1/metrics: refused"])
    console = Console(width=140, record=True)
    console.print(render(v))
    text = console.export_text()
    for part in (
        "us-west",
        "answers/s",
        "p99",
        "cache hit",
        "open breakers",
        "tuner",
        "unreachable: http://gone",
    ):
        assert part in text, part


FLOW_BEFORE = """
kinfer_worker_cancelled_total{where="decoding"} 1
kinfer_worker_queue_wait_seconds_bucket{band="1",tenant="paid",le="0.1"} 10
kinfer_worker_queue_wait_seconds_bucket{band="1",tenant="paid",le="+Inf"} 10
kinfer_worker_queue_wait_seconds_bucket{band="0",tenant="free",le="0.1"} 0
kinfer_worker_queue_wait_seconds_bucket{band="0",tenant="free",le="+Inf"} 0
"""
FLOW_AFTER = """
kinfer_worker_cancelled_total{where="decoding"} 4
kinfer_worker_cancelled_total{where="dispatched"} 2
kinfer_worker_cancel_saved_tokens_total{where="decoding"} 900
kinfer_admission_cancelled_total{where="queued"} 1
kinfer_admission_cancel_saved_tokens_total{where="queued"} 64
kinfer_worker_queue_wait_seconds_bucket{band="1",tenant="paid",le="0.1"} 20
kinfer_worker_queue_wait_seconds_bucket{band="1",tenant="paid",le="+Inf"} 20
kinfer_worker_queue_wait_seconds_bucket{band="0",tenant="free",le="0.1"} 0
kinfer_worker_queue_wait_seconds_bucket{band="0",tenant="free",le="+Inf"} 5
"""


def test_cancels_and_fair_queue_waits_by_band_and_tenant() -> None:
    v = view(parse({"w": FLOW_BEFORE}), parse({"w": FLOW_AFTER}), 5.0)
    assert v.flow.cancelled == {"queued": 1, "decoding": 3, "dispatched": 2}
    assert v.flow.cancel_saved_tokens == 964
    assert set(v.flow.band_wait_p99_s) == {"0", "1"} and v.flow.band_wait_p99_s["1"] <= 0.1
    assert v.flow.band_wait_p99_s["0"] >= 0.1  # the free band waited past the first bucket
    assert next(iter(v.flow.tenant_wait_p99_s)) == "free"  # the longest wait first
    console = Console(width=160, record=True)
    console.print(render(v))
    text = console.export_text()
    assert "cancelled queued 1, decoding 3, dispatched 2" in text and "queue wait p99 by band" in text
