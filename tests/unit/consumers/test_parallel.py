"""A model split over ranks (tensor x pipeline, gloo on this CPU) answers as one process does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kinfer.consumers.engine import load_runner
from kinfer.consumers.parallel.layout import ModelShape, ParallelLayout
from kinfer.consumers.parallel.shard import check_split
from kinfer.infra.stack.process import free_port
from tests.conftest import MODELS
from tests.parallel_ranks import decode

ROOT = Path(__file__).resolve().parents[3]
SMOLLM2 = MODELS / "smollm2-135m-instruct"


def run_ranks(model: str, tensor: int, pipeline: int, out: Path) -> tuple[dict[str, str], list[int]]:
    port = free_port()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.parallel_ranks",
                str(r),
                str(tensor),
                str(pipeline),
                str(port),
                model,
                str(out),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for r in range(tensor * pipeline)
    ]
    logs = [p.communicate(timeout=600)[0].decode(errors="replace") for p in procs]
    for rank, (proc, log) in enumerate(zip(procs, logs, strict=True)):
        assert proc.returncode == 0, f"rank {rank} failed:\n{log[-3000:]}"
    result = json.loads(out.read_text())
    sizes = [result["bytes"]] + [
        json.loads(out.with_suffix(f".{r}").read_text())["bytes"] for r in range(1, len(procs))
    ]
    return result["answers"], sizes


def single(model: str) -> tuple[dict[str, str], int]:
    runner = load_runner(model, device="cpu")
    return decode(runner.batch()), runner.parameter_bytes()  # type: ignore[attr-defined]


@pytest.mark.parametrize(("tensor", "pipeline"), [(2, 1), (1, 2), (2, 2)])
def test_kinfer_tiny_over_ranks_answers_as_one_process(tensor: int, pipeline: int, tmp_path: Path) -> None:
    expected, whole = single("kinfer-tiny")
    answers, sizes = run_ranks("kinfer-tiny", tensor, pipeline, tmp_path / "out.json")
    assert answers == expected and "3" not in answers
    assert max(sizes) < whole, f"each rank holds less than the whole model: {sizes} vs {whole}"


@pytest.mark.slow
@pytest.mark.parametrize(("tensor", "pipeline"), [(3, 1), (1, 2)])
def test_smollm2_over_ranks_answers_as_one_process(tensor: int, pipeline: int, tmp_path: Path) -> None:
    if not SMOLLM2.exists():
        pytest.skip("SmolLM2 is pulled by `make setup`")
    expected, whole = single(str(SMOLLM2))
    answers, sizes = run_ranks(str(SMOLLM2), tensor, pipeline, tmp_path / "out.json")
    greedy = [str(i) for i in range(4)]  # a sampled token may differ: sums in another order
    assert {k: answers[k] for k in greedy if k in answers} == {
        k: expected[k] for k in greedy if k in expected
    }
    assert max(sizes) < whole


@pytest.mark.parametrize(
    ("layout", "shape", "needle"),
    [
        (
            ParallelLayout(tensor=2),
            ModelShape(30, 9, 3),
            "does not divide .*9 attention heads.*use one of \\[1, 3\\]",
        ),
        (ParallelLayout(tensor=3), ModelShape(3, 4, 4), "does not divide"),
        (ParallelLayout(pipeline=4), ModelShape(3, 4, 4), "more stages than"),
        (ParallelLayout(pipeline=2, split=(1, 1)), ModelShape(3, 4, 4), "covers 2 layers"),
        (ParallelLayout(pipeline=2, split=(3, 0)), ModelShape(3, 4, 4), "each of 2 stages a layer"),
    ],
)
def test_a_split_the_model_does_not_admit_is_refused_naming_the_numbers(
    layout: ParallelLayout, shape: ModelShape, needle: str
) -> None:
    with pytest.raises(ValueError, match=needle):
        layout.check(shape, "m")


def test_stages_split_layers_evenly_unless_told() -> None:
    assert ParallelLayout(pipeline=2).stage_layers(3) == [range(0, 2), range(2, 3)]
    assert ParallelLayout(pipeline=2, split=(1, 2)).stage_layers(3) == [range(0, 1), range(1, 3)]
    assert ParallelLayout(tensor=2, pipeline=2).stage_of(3) == 1


def test_models_that_cannot_be_split_are_refused_before_any_rank_starts() -> None:
    with pytest.raises(ValueError, match="cannot be split"):
        check_split("echo", ParallelLayout(tensor=2))
    check_split("kinfer-tiny", ParallelLayout(tensor=4))
