"""What every in-process engine owes the worker, run against each: kinfer's torch engine and
llama.cpp, on the same SmolLM2 weights (llama.cpp's F32 GGUF holds the torch folder's values).

A property that holds for one engine only says so in its name (``torch`` keeps a row's greedy
tokens bit-identical whatever it is batched with; llama.cpp's kernels sum in an order that
depends on the batch, so there a near-tie may flip and the test checks the logits instead).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from kinfer.consumers.engine import GenerationInput, GenerationOutput, ModelRunner, load_runner
from kinfer.consumers.engine.runner import EngineLoadFailed, TextDelta
from kinfer.consumers.engine.torch_runner import TorchRunner
from kinfer.schemas import ChatMessage, SamplingParams
from tests.conftest import smollm2_gguf

ENGINES = ["torch", "llama.cpp"]
QUESTIONS = ["What is Kafka? Answer in one sentence.", "Name three colours.", "Say hello in French."]
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> ModelRunner:
    name = "smollm2" if request.param == "torch" else "smollm2_llama"
    runner: ModelRunner = request.getfixturevalue(name)
    return runner


def chat(runner: ModelRunner, question: str) -> str:
    return runner.render_chat([ChatMessage("user", question)])


def run(runner: ModelRunner, prompt: str, **knobs: Any) -> GenerationOutput:
    return runner.generate([GenerationInput(prompt, SamplingParams(**{"max_tokens": 16, **knobs}))])[0]


def test_both_engines_render_tokenize_and_answer_the_same(
    smollm2: ModelRunner, smollm2_llama: ModelRunner
) -> None:
    for question in QUESTIONS:
        prompt = chat(smollm2, question)
        assert chat(smollm2_llama, question) == prompt  # the GGUF's own template, rendered alike
        assert smollm2_llama.count_tokens(prompt) == smollm2.count_tokens(prompt)
        torch_out, llama_out = run(smollm2, prompt), run(smollm2_llama, prompt)
        assert llama_out.text == torch_out.text, question
        assert (llama_out.prompt_tokens, llama_out.completion_tokens) == (
            torch_out.prompt_tokens,
            torch_out.completion_tokens,
        )


def test_max_tokens_and_finish_reasons(engine: ModelRunner) -> None:
    outs = engine.generate(
        [GenerationInput(chat(engine, QUESTIONS[0]), SamplingParams(max_tokens=n)) for n in (1, 4, 9)]
    )
    for out, n in zip(outs, (1, 4, 9), strict=True):
        assert out.completion_tokens <= n
        assert out.finish_reason == ("length" if out.completion_tokens == n else "stop")
    short = run(engine, chat(engine, "Reply with the single word: yes"), max_tokens=40)
    assert short.finish_reason == "stop" and short.completion_tokens < 40  # the end of turn ends it


def test_a_stop_sequence_cuts_the_text_and_is_never_streamed(engine: ModelRunner) -> None:
    prompt = chat(engine, QUESTIONS[0])
    free = run(engine, prompt, max_tokens=24).text
    stop = free[10:14]
    deltas: list[TextDelta] = []
    sampling = SamplingParams(max_tokens=24, stop=(stop,))
    (cut,) = engine.generate([GenerationInput(prompt, sampling)], lambda _i, d: deltas.append(d))
    assert cut.finish_reason == "stop"
    assert cut.text == free[: free.find(stop)]
    assert "".join(d.text for d in deltas) == cut.text


def test_seeded_sampling_is_reproducible_and_differs_by_seed(engine: ModelRunner) -> None:
    prompt = chat(engine, QUESTIONS[1])

    def sample(seed: int) -> str:
        return run(engine, prompt, max_tokens=24, temperature=1.2, seed=seed).text

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)


def test_penalties_and_logit_bias_change_the_pick(engine: ModelRunner) -> None:
    prompt = chat(engine, QUESTIONS[0])
    plain = run(engine, prompt, max_tokens=24)
    assert run(engine, prompt, max_tokens=24, frequency_penalty=2.0).text != plain.text
    first = engine.generate([GenerationInput(prompt, SamplingParams(max_tokens=1, logprobs=True))])[0]
    banned = run(engine, prompt, max_tokens=1, logit_bias={_first_token(engine, prompt): -100.0})
    assert banned.text != first.text
    forced = run(engine, prompt, max_tokens=3, logit_bias={_token_of(engine, " Kafka"): 100.0})
    assert forced.text.strip().startswith("Kafka Kafka")


def test_logprobs_are_per_token_and_ranked(engine: ModelRunner) -> None:
    out = run(engine, chat(engine, QUESTIONS[2]), max_tokens=8, logprobs=True, top_logprobs=3)
    assert out.logprobs is not None and len(out.logprobs) == out.completion_tokens
    assert "".join(t.token for t in out.logprobs) == out.text
    for token in out.logprobs:
        assert token.logprob <= 0.0 and len(token.top) == 3
        assert [a.logprob for a in token.top] == sorted((a.logprob for a in token.top), reverse=True)
        assert token.top[0].logprob >= token.logprob - 1e-4  # greedy: the pick is the likeliest


def test_n_choices_stream_each_choice_and_differ_when_sampled(engine: ModelRunner) -> None:
    streamed: dict[int, str] = {}

    def sink(_row: int, delta: TextDelta) -> None:
        streamed[delta.choice] = streamed.get(delta.choice, "") + delta.text

    sampling = SamplingParams(max_tokens=16, n=3, temperature=1.0, seed=7)
    (out,) = engine.generate([GenerationInput(chat(engine, QUESTIONS[1]), sampling)], sink)
    choices = [out, *out.more]
    assert len(choices) == 3 and len({c.text for c in choices}) > 1
    assert [streamed[i] for i in range(3)] == [c.text for c in choices]


def test_a_json_schema_constrains_every_engine(engine: ModelRunner) -> None:
    sampling = SamplingParams(max_tokens=60, json_schema=PERSON)
    assert engine.sampling_problem(sampling) is None
    (out,) = engine.generate([GenerationInput(chat(engine, "Describe a person as JSON."), sampling)])
    assert out.finish_reason == "stop"
    jsonschema.validate(json.loads(out.text), PERSON)
    bad = SamplingParams(json_schema={"type": "object", "properties": {"x": {"type": "frobnicate"}}})
    assert "json_schema" in (engine.sampling_problem(bad) or "")
    outside = SamplingParams(logit_bias={engine.vocab_size + 5: 1.0})
    assert "vocabulary" in (engine.sampling_problem(outside) or "")


def test_rows_join_and_leave_between_steps(engine: ModelRunner) -> None:
    running = engine.batch()
    long, short, late = (
        GenerationInput(chat(engine, q), SamplingParams(max_tokens=n))
        for q, n in zip(QUESTIONS, (20, 3, 6), strict=True)
    )
    running.join([("long", long), ("short", short)])
    ended: dict[str, Any] = {}
    steps = 0
    while running:
        if steps == 2:
            running.join([("late", late)])
        if steps == 4:
            assert running.remove(lambda key: key != "late") == ["late"]  # dropped mid-decode
        ended.update(running.step())
        steps += 1
    assert set(ended) == {"long", "short"}
    assert ended["short"].completion_tokens <= 3 and ended["long"].completion_tokens <= 20
    if isinstance(engine, TorchRunner):  # bit-identical there; llama.cpp: see the tolerance test
        assert ended["long"].text == run(engine, long.prompt, max_tokens=20).text


def test_torch_rows_are_bit_identical_whatever_they_are_batched_with(smollm2: ModelRunner) -> None:
    items = [GenerationInput(chat(smollm2, q), SamplingParams(max_tokens=12)) for q in QUESTIONS]
    assert [o.text for o in smollm2.generate(items)] == [
        run(smollm2, i.prompt, max_tokens=12).text for i in items
    ]


def test_llama_cpp_rows_batched_are_within_float_tolerance_of_alone(smollm2_llama: ModelRunner) -> None:
    """llama.cpp sums in a batch-dependent order over an f16 KV cache: the same batch gives the
    same tokens, and a row's logits batched differ from alone by rounding (measured: 0.2 % of
    the largest logit), so only a near-tie can flip a token."""
    from kinfer.consumers.engine.llama_cpp import LlamaCppRunner, LlamaSequences

    assert isinstance(smollm2_llama, LlamaCppRunner)
    prompts = [smollm2_llama.tokenizer.encode(chat(smollm2_llama, q)) for q in QUESTIONS]
    together = LlamaSequences(smollm2_llama.engine)
    batched = together.prefill(prompts, [1] * len(prompts))
    together.keep([])
    for row, prompt in enumerate(prompts):
        alone = LlamaSequences(smollm2_llama.engine)
        logits = alone.prefill([prompt], [1])[0]
        alone.keep([])
        gap = float((batched[row] - logits).abs().max())
        assert gap <= 0.01 * float(logits.abs().max()), (row, gap)  # its f16 KV cache, summed apart
        assert int(batched[row].argmax()) == int(logits.argmax())
    items = [GenerationInput(chat(smollm2_llama, q), SamplingParams(max_tokens=12)) for q in QUESTIONS]
    assert smollm2_llama.generate(items) == smollm2_llama.generate(items)


def test_llama_cpp_gives_back_every_sequence(smollm2_llama: ModelRunner) -> None:
    from kinfer.consumers.engine.llama_cpp import LlamaCppRunner

    assert isinstance(smollm2_llama, LlamaCppRunner)
    free = len(smollm2_llama.engine.free)
    smollm2_llama.generate([GenerationInput("a", SamplingParams(max_tokens=3, n=4)) for _ in range(3)])
    assert len(smollm2_llama.engine.free) == free


def _first_token(runner: ModelRunner, prompt: str) -> int:
    out = runner.generate([GenerationInput(prompt, SamplingParams(max_tokens=1))])[0]
    return _token_of(runner, out.text)


def _token_of(runner: ModelRunner, text: str) -> int:
    tokenizer: Any = getattr(runner, "tokenizer")  # noqa: B009 - both engines keep their codec there
    (token,) = [t for t in tokenizer.encode(text) if tokenizer.decode([t])]
    return int(token)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (None, "no such GGUF file"),
        (b"not a model\n", "is not a GGUF file"),
        (b"GGUF\x03\x00\x00\x00garbage", "failed to read header"),
        ("truncated", "not within the file bounds"),
    ],
)
def test_a_file_llama_cpp_cannot_serve_is_refused_naming_why(
    tmp_path: Path, content: bytes | str | None, why: str
) -> None:
    path = tmp_path / "model.gguf"
    if content == "truncated":
        with smollm2_gguf("Q4_1").open("rb") as whole:
            path.write_bytes(whole.read(2_000_000))
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(EngineLoadFailed, match=why):
        load_runner(str(path), engine="llama.cpp", threads=1)


def test_a_llama_cpp_prefill_that_cannot_fit_leaves_the_batch_as_it_was() -> None:
    from kinfer.consumers.engine.llama_cpp import LlamaCppRunner, LlamaSequences

    small = load_runner(
        str(smollm2_gguf("Q4_1")), engine="llama.cpp", threads=1, max_batch_tokens=256, max_batch_requests=4
    )
    assert isinstance(small, LlamaCppRunner)
    engine = small.engine
    store = LlamaSequences(engine)
    with pytest.raises(RuntimeError, match="free sequences"):
        store.prefill([[1, 2, 3]] * 5, [1] * 5)
    with pytest.raises(RuntimeError, match="llama_decode failed"):
        store.prefill([[1] * 100] * 4, [1] * 4)  # 400 tokens: more than its 256 KV cells
    assert sorted(engine.free) == [0, 1, 2, 3] and store.seqs == []
    assert len(store.prefill([[1, 2, 3]], [2])) == 2  # and it still serves
    store.keep([])
    engine.close()


def test_more_rows_than_llama_cpp_has_sequences_are_refused_at_start() -> None:
    with pytest.raises(EngineLoadFailed, match="at most 256 sequences"):
        load_runner(str(smollm2_gguf("Q4_1")), engine="llama.cpp", max_batch_requests=300)
