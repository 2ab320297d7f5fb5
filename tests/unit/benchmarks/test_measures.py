"""What the benchmarks compute from their samples: stage splits, progress lines, and the
in-process engine loops, without services."""

from __future__ import annotations

import pytest

from benchmarks import report, suite
from benchmarks.engine_loop import continuous, poisson, static
from benchmarks.load import STAGES, stage_split
from kinfer.consumers.engine import load_runner
from kinfer.schemas import InferenceResult, SamplingParams, Timings, Usage


def result(timings: Timings | None) -> InferenceResult:
    return InferenceResult(
        request_id="r", text="t", finish_reason="length", usage=Usage(1, 1), model="m", timings=timings
    )


def test_the_stages_split_the_whole_latency_in_order() -> None:
    stamps = Timings(admitted_ms=103, dispatched_ms=105, consumed_ms=108, started_ms=108.5, finished_ms=111)
    split = stage_split(result(stamps), sent_ms=100, received_ms=130)
    assert list(split) == list(STAGES)
    assert split == {
        "to_admission_ms": 3,
        "admission_ms": 2,
        "to_worker_ms": 3,
        "queue_ms": 0.5,
        "compute_ms": 2.5,
        "reply_ms": 19,
    }
    assert sum(split.values()) == 30


def test_an_answer_without_stamps_is_refused_not_mistaken_for_zero() -> None:
    with pytest.raises(ValueError, match="no timings"):
        stage_split(result(None), sent_ms=0, received_ms=1)
    with pytest.raises(ValueError, match="no timings"):
        stage_split(result(Timings(consumed_ms=5)), sent_ms=0, received_ms=1)


def test_progress_lines_are_what_the_suite_reads(capsys: pytest.CaptureFixture[str]) -> None:
    report.progress(3, 7, "kinfer-tiny: whole pipeline")
    line = capsys.readouterr().out.strip()
    match = suite._PROGRESS.match(line)
    assert match is not None and match.groups() == ("3", "7", "kinfer-tiny: whole pipeline")


def test_the_suite_refuses_unknown_names_before_running_anything() -> None:
    assert suite.run(["ceiling", "no-such-benchmark"]) == 2


def test_continuous_batching_lets_short_requests_leave_before_long_ones() -> None:
    runner = load_runner("echo")  # one token per step, the prompt reversed

    def make(i: int) -> tuple[str, SamplingParams, str]:
        long = i % 2 == 1
        return ("x" * (40 if long else 2), SamplingParams(max_tokens=64), "long" if long else "short")

    arrivals = poisson(500.0, 20, make)
    for done in (continuous(runner, arrivals), static(runner, arrivals)):
        assert sorted(d.kind for d in done) == sorted(a.kind for a in arrivals)
        assert all(d.latency_ms >= 0 and d.tokens > 0 for d in done)


def test_a_fault_run_counts_answers_in_its_window_gaps_lost_and_twice() -> None:
    import collections

    from benchmarks.gray_failures import BEFORE_S, summarize
    from benchmarks.steady import SteadyRun

    # Answers every 0.5 s, none between 8 and 11 s; the fault lasts 10 s from BEFORE_S (5 s).
    done = [t / 2 for t in range(0, 40) if not 8 < t / 2 < 11]
    run = SteadyRun(done, waits=[0.1, 3.0], unavailable=1, duplicates=0)
    counts = collections.Counter({"f-0": 1, "f-1": 2})  # f-2 never answered
    row = summarize("f", run, counts, total=3, fault_s=10.0)
    assert row["answers_during"] == run.during(BEFORE_S + 1, BEFORE_S + 10) == 14  # 6-8 s and 11-15 s
    assert row["longest_gap_s"] == 3.0 and row["slowest_answer_s"] == 3.0
    assert (row["lost"], row["answered_twice"], row["unavailable"]) == (1, 1, 1)
