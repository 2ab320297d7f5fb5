"""What OpenAI's sampling knobs cost the engine, and what ``n`` choices in one request save.

    python -m benchmarks.sampling [--model smollm2-135m-instruct] [--repeats 3]

Through kinfer's continuous batch on the real model, 8 chat prompts decoded together for 32
new tokens, as each knob: plain greedy; frequency and presence penalties; ``logprobs`` with
5 alternatives; a JSON Schema constraint (llguidance masks the logits each step). Then 4
answers to one prompt three ways: one request with ``n=4`` (one prefill, rows repeated), 4
requests batched together, and 4 requests one after another. Every variant runs in each
repeat, in turn, so drift on a shared machine hits them all alike; reported are medians
and their ratios to plain greedy (to ``n=4``). Writes benchmarks/results/sampling.json and .png.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks import report
from benchmarks.plots import figure
from benchmarks.stack import MODELS
from kinfer.consumers.engine import GenerationInput, GenerationOutput, load_runner
from kinfer.consumers.engine.torch_runner import TorchRunner
from kinfer.infra.models import DEFAULT_MODEL, ModelStore
from kinfer.infra.models.pull import ensure_local
from kinfer.schemas import ChatMessage, SamplingParams

QUESTIONS = ["What is the capital of France?", "Name three colors.", "What is Kafka?", "Say hello."]
NEW_TOKENS = 32
ANSWER: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string", "maxLength": 80}, "sure": {"type": "boolean"}},
    "required": ["answer", "sure"],
    "additionalProperties": False,
}
KNOBS: dict[str, dict[str, Any]] = {
    "greedy": {},
    "penalties": {"frequency_penalty": 0.8, "presence_penalty": 0.5},
    "logprobs_top5": {"logprobs": True, "top_logprobs": 5},
    "json_schema": {"json_schema": ANSWER},
}


def timed(run: Callable[[], list[GenerationOutput]]) -> tuple[float, int]:
    """(seconds, new tokens) of one call."""
    started = time.perf_counter()
    outputs = run()
    tokens = sum(o.completion_tokens + sum(c.completion_tokens for c in o.more) for o in outputs)
    return time.perf_counter() - started, tokens


def knob_runs(runner: TorchRunner, prompts: list[str]) -> dict[str, Callable[[], list[GenerationOutput]]]:
    def batch(knobs: dict[str, Any]) -> Callable[[], list[GenerationOutput]]:
        sampling = SamplingParams(max_tokens=NEW_TOKENS, **knobs)
        return lambda: runner.generate([GenerationInput(p, sampling) for p in prompts])

    return {name: batch(knobs) for name, knobs in KNOBS.items()}


def choice_runs(runner: TorchRunner, prompt: str) -> dict[str, Callable[[], list[GenerationOutput]]]:
    """The same four answers each way: choice i of n draws from seed + i, as request i does."""
    four = GenerationInput(prompt, SamplingParams(max_tokens=NEW_TOKENS, temperature=0.8, seed=1, n=4))
    apart = [
        GenerationInput(prompt, SamplingParams(max_tokens=NEW_TOKENS, temperature=0.8, seed=s))
        for s in (1, 2, 3, 4)
    ]
    return {
        "n=4": lambda: runner.generate([four]),
        "4 requests batched": lambda: runner.generate(apart),
        "4 requests in turn": lambda: [runner.generate([item])[0] for item in apart],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runner = load_runner(ensure_local(args.model, ModelStore(MODELS)), device="cpu", served_name=args.model)
    assert isinstance(runner, TorchRunner)
    prompts = [runner.render_chat([ChatMessage("user", QUESTIONS[i % 4])]) for i in range(8)]
    runs = {**knob_runs(runner, prompts), **choice_runs(runner, prompts[0])}
    runs["json_schema"]()  # the grammar's view of the vocabulary is built once, on first use
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in runs}
    for repeat in range(args.repeats):
        for i, (name, run) in enumerate(runs.items()):
            report.progress(repeat * len(runs) + i, args.repeats * len(runs), f"{name} (repeat {repeat + 1})")
            seconds, tokens = timed(run)
            samples[name].append({"seconds": seconds, "tokens": tokens, "tok_s": tokens / seconds})
    report.progress(args.repeats * len(runs), args.repeats * len(runs), "done")
    medians = {name: statistics.median(s["tok_s"] for s in rows) for name, rows in samples.items()}
    took = {name: statistics.median(s["seconds"] for s in rows) for name, rows in samples.items()}
    vs_greedy = {name: medians[name] / medians["greedy"] for name in KNOBS}
    vs_batched = took["4 requests batched"] / took["n=4"]
    vs_in_turn = took["4 requests in turn"] / took["n=4"]
    results = {
        "tok_s": medians,
        "seconds": took,
        "knob_vs_greedy": vs_greedy,
        "n4_speedup_vs_batched": vs_batched,
        "n4_speedup_vs_in_turn": vs_in_turn,
    }
    report.write(
        "sampling",
        settings={**vars(args), "new_tokens": NEW_TOKENS, "cpu_threads": torch.get_num_threads()},
        results=results,
        samples=samples,
        headline=[
            *((f"{name}: tok/s vs greedy", f"{ratio:.2f}x") for name, ratio in vs_greedy.items()),
            ("n=4 vs 4 requests batched / in turn", f"{vs_batched:.2f}x / {vs_in_turn:.2f}x faster"),
        ],
    )
    plot(medians, took, args.model, report.png("sampling"))


def plot(tok_s: dict[str, float], seconds: dict[str, float], model: str, path: Path) -> None:
    fig, (knobs, choices) = figure(10, 3.6, ncols=2)
    names = list(KNOBS)
    knobs.bar(names, [tok_s[n] for n in names], color="#4477aa")
    knobs.set_title(f"8 prompts x {NEW_TOKENS} tokens: tokens/s")
    knobs.tick_params(axis="x", labelrotation=20)
    ways = ["n=4", "4 requests batched", "4 requests in turn"]
    choices.bar(ways, [seconds[w] for w in ways], color=["#228833", "#66ccee", "#ee6677"])
    choices.set_title("4 answers to one prompt: seconds (lower is better)")
    choices.tick_params(axis="x", labelrotation=20)
    fig.suptitle(f"{model}: what each sampling knob costs (CPU, median of repeats)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
