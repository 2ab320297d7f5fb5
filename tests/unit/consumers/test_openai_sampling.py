"""OpenAI's sampling knobs in the engine: penalties, logit bias, n choices, log-probabilities.

Each is checked through the runner the worker uses (kinfer-tiny: deterministic weights, one
token per byte) and the pure sampler beneath it.
"""

from __future__ import annotations

import math

import pytest
import torch

from kinfer.consumers.engine import GenerationInput, GenerationOutput, load_runner
from kinfer.consumers.engine.runner import TextDelta
from kinfer.consumers.engine.sampling import adjusted, logprobs_of, pick_batch
from kinfer.consumers.engine.torch_runner import TorchRunner
from kinfer.schemas import SamplingParams

PROMPT = "the cat sat on the mat and the"


@pytest.fixture(scope="module")
def runner() -> TorchRunner:
    r = load_runner("kinfer-tiny", device="cpu")
    assert isinstance(r, TorchRunner)
    return r


def one(runner: TorchRunner, prompt: str = PROMPT, **knobs: object) -> GenerationOutput:
    return runner.generate([GenerationInput(prompt, SamplingParams(max_tokens=24, **knobs))])[0]  # type: ignore[arg-type]


def test_penalties_subtract_per_occurrence_and_once_for_presence() -> None:
    logits = torch.zeros((1, 6))
    params = [SamplingParams(frequency_penalty=0.5, presence_penalty=1.0)]
    out = adjusted(logits, params, [[2, 2, 2, 4]])
    assert out[0].tolist() == [0.0, 0.0, -2.5, 0.0, -1.5, 0.0]
    bias = adjusted(logits, [SamplingParams(logit_bias={1: 5.0, 3: -100.0})], [[]])
    assert bias[0].tolist() == [0.0, 5.0, 0.0, -100.0, 0.0, 0.0]


def test_a_penalty_changes_what_a_fixed_seed_picks(runner: TorchRunner) -> None:
    sampled = {"temperature": 0.8, "seed": 11}
    plain = one(runner, **sampled).text
    assert one(runner, **sampled).text == plain  # the seed fixes it
    assert one(runner, **sampled, frequency_penalty=2.0).text != plain
    assert one(runner, **sampled, presence_penalty=2.0).text != plain


def test_a_greedy_repeat_is_broken_by_the_frequency_penalty(runner: TorchRunner) -> None:
    def most_repeated(text: str) -> int:
        return max(text.count(c) for c in set(text)) if text else 0

    plain, penalised = one(runner).text, one(runner, frequency_penalty=2.0).text
    assert penalised != plain
    assert most_repeated(penalised) <= most_repeated(plain)


def test_logit_bias_bans_and_forces_tokens(runner: TorchRunner) -> None:
    plain = one(runner).text
    first = plain[0].encode()[0]  # a byte token of kinfer-tiny
    banned = one(runner, logit_bias={first: -100.0}).text
    assert banned and banned[0] != plain[0]
    forced = one(runner, logit_bias={ord("z"): 100.0})
    assert forced.text == "z" * 24 and forced.finish_reason == "length"


def test_batched_equals_one_at_a_time_with_penalties_bias_and_choices(runner: TorchRunner) -> None:
    items = [
        GenerationInput(PROMPT, SamplingParams(max_tokens=16, frequency_penalty=1.5)),
        GenerationInput(
            "hello there", SamplingParams(max_tokens=16, presence_penalty=-1.0, logit_bias={101: 3})
        ),
        GenerationInput(
            "sampled", SamplingParams(max_tokens=16, temperature=0.9, seed=3, frequency_penalty=0.7)
        ),
        GenerationInput("three ways", SamplingParams(max_tokens=12, temperature=1.0, seed=5, n=3)),
        GenerationInput("plain greedy", SamplingParams(max_tokens=16, logprobs=True, top_logprobs=3)),
    ]
    alone = [runner.generate([item])[0] for item in items]
    batched = runner.generate(items)
    assert [[o.text, *(c.text for c in o.more)] for o in batched] == [
        [o.text, *(c.text for c in o.more)] for o in alone
    ]
    # Padding changes the float sums a little: the same tokens, log-probabilities to 1e-4.
    assert batched[4].logprobs is not None and alone[4].logprobs is not None
    for b, a in zip(batched[4].logprobs, alone[4].logprobs, strict=True):
        assert [b.token, *(t.token for t in b.top)] == [a.token, *(t.token for t in a.top)]
        assert math.isclose(b.logprob, a.logprob, abs_tol=1e-4)


def test_n_choices_are_decoded_together_and_differ_when_sampled(runner: TorchRunner) -> None:
    out = one(runner, temperature=1.0, seed=21, n=4)
    texts = [out.text, *(c.text for c in out.more)]
    assert len(texts) == 4 and len(set(texts)) > 1
    assert one(runner, temperature=1.0, seed=21, n=4) == out  # each choice reproducible
    first_alone = one(runner, temperature=1.0, seed=21)
    assert first_alone.text == out.text  # choice 0 draws from the seed itself
    greedy = one(runner, n=2)
    assert greedy.more[0].text == greedy.text


def test_logprobs_are_the_models_and_top_logprobs_rank_them(runner: TorchRunner) -> None:
    out = one(runner, logprobs=True, top_logprobs=5)
    assert out.logprobs is not None and len(out.logprobs) == out.completion_tokens
    assert "".join(t.token for t in out.logprobs) == out.text
    for token in out.logprobs:
        assert token.logprob <= 0.0 and len(token.top) == 5
        ranked = [alt.logprob for alt in token.top]
        assert ranked == sorted(ranked, reverse=True)
        assert token.top[0].token == token.token  # greedy: the pick is the likeliest
        assert math.isclose(token.logprob, token.top[0].logprob)
    assert one(runner).logprobs is None


def test_logprobs_ignore_the_bias_that_forced_the_pick() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    params = [SamplingParams(logprobs=True, top_logprobs=2, logit_bias={2: 100.0})]
    (pick,) = pick_batch(logits, params, [None])
    assert pick == 2
    ((logprob, top),) = logprobs_of(logits, params, [pick])  # type: ignore[misc]
    expected = torch.log_softmax(logits, dim=-1)[0]
    assert math.isclose(logprob, float(expected[2]), rel_tol=1e-6) and [t for t, _ in top] == [0, 1]


def test_streamed_logprobs_add_up_to_the_final_ones_per_choice(runner: TorchRunner) -> None:
    free = one(runner).text
    stop = free[5:7]
    item = GenerationInput(PROMPT, SamplingParams(max_tokens=24, stop=(stop,), logprobs=True, n=2))
    deltas: list[TextDelta] = []
    (out,) = runner.generate([item], on_text=lambda _row, delta: deltas.append(delta))
    for choice, final in enumerate([out, *out.more]):
        mine = [d for d in deltas if d.choice == choice]
        assert "".join(d.text for d in mine) == final.text == free[: free.find(stop)]
        assert [t for d in mine for t in d.logprobs or ()] == list(final.logprobs or ())
        assert "".join(t.token for t in final.logprobs or ()) == final.text
