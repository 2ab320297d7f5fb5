"""kinfer-tiny through the same runner the worker uses."""

from __future__ import annotations

import random

import pytest
import torch

from kinfer.consumers.engine import GenerationInput, load_runner
from kinfer.consumers.engine.tiny import build_tiny
from kinfer.consumers.engine.torch_runner import TorchRunner
from kinfer.schemas import SamplingParams


@pytest.fixture(scope="module")
def runner() -> TorchRunner:
    r = load_runner("kinfer-tiny", device="cpu")
    assert isinstance(r, TorchRunner)
    return r


def prompts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice("abcdef ghij,klm") for _ in range(rng.randint(1, 60))) for _ in range(n)]


def test_weights_are_deterministic() -> None:
    a, b = build_tiny(), build_tiny()
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(pa, pb), name


def test_batched_greedy_equals_one_at_a_time(runner: TorchRunner) -> None:
    sampling = SamplingParams(max_tokens=12)
    items = [GenerationInput(p, sampling) for p in prompts(40)]
    alone = [runner.generate([item])[0] for item in items]
    batched = runner.generate(items)
    assert [o.text for o in batched] == [o.text for o in alone]
    assert [o.completion_tokens for o in batched] == [o.completion_tokens for o in alone]


def test_max_tokens_per_request_in_one_batch(runner: TorchRunner) -> None:
    outs = runner.generate([GenerationInput("abc", SamplingParams(max_tokens=n)) for n in (1, 5, 9)])
    assert [o.completion_tokens for o in outs] == [1, 5, 9] or any(o.finish_reason == "stop" for o in outs)
    for out, n in zip(outs, (1, 5, 9), strict=True):
        assert out.completion_tokens <= n
        assert out.finish_reason == ("length" if out.completion_tokens == n else "stop")
    assert outs[0].prompt_tokens == 4  # BOS + 3 bytes


def test_stop_sequence_cuts_output(runner: TorchRunner) -> None:
    free = runner.generate([GenerationInput("hello", SamplingParams(max_tokens=20))])[0]
    assert len(free.text) >= 4, free
    stop = free.text[2:4]
    cut = runner.generate([GenerationInput("hello", SamplingParams(max_tokens=20, stop=(stop,)))])[0]
    assert cut.finish_reason == "stop"
    assert cut.text == free.text[: free.text.find(stop)]


def test_seeded_sampling_is_reproducible_and_differs_by_seed(runner: TorchRunner) -> None:
    def sample(seed: int) -> str:
        params = SamplingParams(max_tokens=24, temperature=1.5, seed=seed)
        return runner.generate([GenerationInput("seed me", params)])[0].text

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)


def test_output_is_printable_text(runner: TorchRunner) -> None:
    out = runner.generate([GenerationInput(p, SamplingParams(max_tokens=16)) for p in prompts(8, seed=3)])
    assert all(ch.isprintable() or ch == "\n" for o in out for ch in o.text)


def test_unknown_model_and_dtype_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        load_runner("gpt-17")
    with pytest.raises(ValueError, match="dtype"):
        load_runner("kinfer-tiny", dtype="float8")


def test_streamed_text_adds_up_to_the_final_text_and_never_leaks_a_stop(runner: TorchRunner) -> None:
    free = runner.generate([GenerationInput("stream", SamplingParams(max_tokens=24))])[0].text
    stop = free[6:8]
    items = [
        GenerationInput("stream", SamplingParams(max_tokens=24, stop=(stop,))),
        GenerationInput("other prompt", SamplingParams(max_tokens=10)),
        GenerationInput("stream", SamplingParams(max_tokens=24)),
    ]
    pieces: dict[int, list[str]] = {0: [], 1: [], 2: []}
    outs = runner.generate(items, on_text=lambda row, delta: pieces[row].append(delta.text))
    for row, out in enumerate(outs):
        assert "".join(pieces[row]) == out.text
    assert stop not in "".join(pieces[0]) and outs[0].text == free[: free.find(stop)]
    assert len(pieces[2]) > 1, "text should arrive in several pieces"


def test_bfloat16_and_int8_halve_or_better_the_weights_and_still_generate() -> None:
    sampling = SamplingParams(max_tokens=8)
    fp32 = load_runner("kinfer-tiny", device="cpu")
    for runner in (
        load_runner("kinfer-tiny", device="cpu", dtype="bfloat16"),
        load_runner("kinfer-tiny", device="cpu", quantize="int8"),
    ):
        assert isinstance(runner, TorchRunner) and isinstance(fp32, TorchRunner)
        assert runner.parameter_bytes() <= fp32.parameter_bytes() / 2
        out = runner.generate([GenerationInput("hello", sampling)])[0]
        assert out.completion_tokens >= 1 and out.text.isprintable()


def test_impossible_precision_choices_are_refused() -> None:
    with pytest.raises(ValueError, match="float16 is for CUDA"):
        load_runner("kinfer-tiny", device="cpu", dtype="float16")
    with pytest.raises(ValueError, match="int8"):
        load_runner("kinfer-tiny", device="cpu", dtype="bfloat16", quantize="int8")


def test_sequences_joining_mid_decode_get_the_same_tokens_and_leave_early(runner: TorchRunner) -> None:
    long_item = GenerationInput("a long story", SamplingParams(max_tokens=60))
    shorts = [GenerationInput(p, SamplingParams(max_tokens=5)) for p in prompts(6, seed=9)]
    alone = {f"s{i}": runner.generate([s])[0].text for i, s in enumerate(shorts)}
    alone["long"] = runner.generate([long_item])[0].text

    running = runner.batch()
    running.join([("long", long_item)])
    finished_at: dict[str, int] = {}
    texts: dict[str, str] = {}
    step = 0
    while running or step == 0:
        if step in (3, 10):  # requests arriving while the long one decodes
            half = 0 if step == 3 else 3
            running.join([(f"s{i}", shorts[i]) for i in range(half, half + 3)])
        for key, out in running.step():
            finished_at[key], texts[key] = step, out.text
        step += 1
    assert texts == alone
    assert all(finished_at[f"s{i}"] < finished_at["long"] for i in range(6))
    assert max(finished_at[f"s{i}"] for i in range(3)) <= 3 + 5


def test_seeded_samples_do_not_depend_on_the_batch(runner: TorchRunner) -> None:
    seeded = GenerationInput("sample me", SamplingParams(max_tokens=20, temperature=1.2, top_p=0.9, seed=7))
    alone = runner.generate([seeded])[0].text
    neighbours = [
        GenerationInput("greedy neighbour", SamplingParams(max_tokens=20)),
        GenerationInput("other sampler", SamplingParams(max_tokens=20, temperature=0.7, seed=1)),
    ]
    batched = runner.generate([neighbours[0], seeded, neighbours[1]])[1].text
    assert batched == alone
