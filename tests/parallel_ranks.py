"""One rank of a parallel worker without Kafka, for the parity tests:
``python -m tests.parallel_ranks RANK TENSOR PIPELINE PORT MODEL OUT``. Rank 0 generates the
prompts below through the rank group and writes the answers to OUT as JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from kinfer.consumers.engine import GenerationInput
from kinfer.consumers.engine.runner import RunningBatch
from kinfer.consumers.parallel.channel import Channel
from kinfer.consumers.parallel.group import RankAddress, join_group
from kinfer.consumers.parallel.layout import ParallelLayout
from kinfer.consumers.parallel.replica import ParallelRunner, follow
from kinfer.consumers.parallel.shard import load_shard
from kinfer.schemas import SamplingParams

PROMPTS = ["hello world", "The capital of France is", "a", "kinfer serves a model over ranks"]


def inputs() -> list[GenerationInput]:
    """Greedy, and one seeded sample: the followers must be told the same picks."""
    greedy = [GenerationInput(p, SamplingParams(max_tokens=12)) for p in PROMPTS]
    sampled = GenerationInput("sampled", SamplingParams(max_tokens=12, temperature=0.8, seed=7))
    return [*greedy, sampled]


def decode(running: RunningBatch[int]) -> dict[str, str]:
    """Two rounds: the second joins while the first decodes (continuous batching), and one
    sequence leaves half-way (its partition moved away)."""
    items = inputs()
    running.join(list(enumerate(items[:2])))
    done = dict(running.step())
    running.join(list(enumerate(items[2:], start=2)))
    done.update(running.step())
    assert running.remove(lambda key: key != 3) == [3]
    while running:
        done.update(running.step())
    return {str(key): output.text for key, output in sorted(done.items())}


def main() -> None:
    rank, tensor, pipeline, port = (int(a) for a in sys.argv[1:5])
    model, out = sys.argv[5], Path(sys.argv[6])
    layout = ParallelLayout(tensor, pipeline)
    group = join_group(layout, RankAddress(rank, "127.0.0.1", port), torch.device("cpu"), timeout_s=120)
    local = load_shard(model, group, dtype=torch.float32)
    channel = Channel(group)
    if rank == 0:
        runner = ParallelRunner(local, channel)
        # Two rounds: the second batch is joined while the first decodes (continuous batching).
        running = runner.batch()
        answers = decode(running)
        running.close()
        out.write_text(json.dumps({"answers": answers, "bytes": local.parameter_bytes()}))
        runner.stop()
    else:
        follow(local, channel)
        out.with_suffix(f".{rank}").write_text(json.dumps({"bytes": local.parameter_bytes()}))
    group.close()


if __name__ == "__main__":
    main()
