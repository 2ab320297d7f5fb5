"""Where a parallel worker's rank comes from: its flags, or torchrun's environment."""

from __future__ import annotations

import pytest

from kinfer.consumers.config import WorkerConfig
from kinfer.infra.worker_ranks import torchrun_overrides

TORCHRUN = {"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "10.0.0.5", "MASTER_PORT": "29500"}


def test_torchrun_sets_rank_and_rendezvous() -> None:
    config = WorkerConfig(tensor_parallel=2)
    assert torchrun_overrides(config, TORCHRUN) == {
        "rank": 1,
        "master_addr": "10.0.0.5",
        "master_port": 29500,
    }


def test_flags_win_over_torchrun_and_no_torchrun_changes_nothing() -> None:
    assert torchrun_overrides(WorkerConfig(tensor_parallel=2, rank=0), TORCHRUN) == {}
    assert torchrun_overrides(WorkerConfig(tensor_parallel=2), {}) == {}


def test_a_world_that_does_not_match_the_split_is_refused() -> None:
    with pytest.raises(ValueError, match=r"torchrun started 2 ranks; .* needs 4"):
        torchrun_overrides(WorkerConfig(tensor_parallel=2, pipeline_parallel=2), TORCHRUN)


def test_the_layout_comes_from_the_config() -> None:
    layout = WorkerConfig(tensor_parallel=2, pipeline_parallel=2, pipeline_split=(1, 2)).layout
    assert (layout.world_size, layout.split, layout.stage_layers(3)) == (
        4,
        (1, 2),
        [range(0, 1), range(1, 3)],
    )
