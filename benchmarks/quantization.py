"""What int8 (and bfloat16) cost the real model: weight memory, quality, speed.

    python -m benchmarks.quantization [--model smollm2-135m-instruct]

Quality is the perplexity of the model on a fixed public-domain paragraph (the
opening of Jane Austen's *Pride and Prejudice*, 1813), computed from the same
weights in float32, bfloat16 and dynamic int8; speed is greedy decoding of 32 new
tokens at batch 1 and 8 through kinfer's continuous batch, all in one run on one
machine. Writes benchmarks/results/quantization.json and .png.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks import report
from benchmarks.plots import figure
from benchmarks.stack import MODELS
from kinfer.consumers.engine import GenerationInput, load_runner
from kinfer.consumers.engine.torch_runner import TorchRunner
from kinfer.infra.models import DEFAULT_MODEL, ModelStore
from kinfer.infra.models.pull import ensure_local
from kinfer.schemas import ChatMessage, SamplingParams

PARAGRAPH = (
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, "
    "must be in want of a wife. However little known the feelings or views of such a man may be on "
    "his first entering a neighbourhood, this truth is so well fixed in the minds of the surrounding "
    "families, that he is considered the rightful property of some one or other of their daughters."
)
VARIANTS = {"float32": ("float32", "none"), "bfloat16": ("bfloat16", "none"), "int8": ("float32", "int8")}


def perplexity(runner: TorchRunner, text: str) -> float:
    """exp(mean negative log-likelihood) of each token given the ones before it."""
    ids = torch.tensor([runner.tokenizer.encode(text)])
    with torch.inference_mode():
        model: Any = runner.module  # an HFCausalLM; .inner is the transformers model
        logits = model.inner(input_ids=ids).logits.float()
    nll = torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:])
    return math.exp(float(nll))


def tokens_per_second(runner: TorchRunner, batch: int) -> float:
    questions = ["What is the capital of France?", "Name three colors.", "What is Kafka?", "Say hello."]
    prompts = [runner.render_chat([ChatMessage("user", questions[i % 4])]) for i in range(batch)]
    sampling = SamplingParams(max_tokens=32)
    runner.generate([GenerationInput(prompts[0], SamplingParams(max_tokens=2))])  # warm up
    started = time.perf_counter()
    outputs = runner.generate([GenerationInput(p, sampling) for p in prompts])
    return sum(o.completion_tokens for o in outputs) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=DEFAULT_MODEL)
    args = parser.parse_args()
    path = ensure_local(args.model, ModelStore(MODELS))
    rows = {}
    for i, (variant, (dtype, quantize)) in enumerate(VARIANTS.items()):
        report.progress(i, len(VARIANTS), variant)
        runner = load_runner(path, device="cpu", dtype=dtype, quantize=quantize, served_name=args.model)
        assert isinstance(runner, TorchRunner)
        rows[variant] = {
            "parameter_bytes": runner.parameter_bytes(),
            "perplexity": perplexity(runner, PARAGRAPH),
            "tok_s_batch1": tokens_per_second(runner, 1),
            "tok_s_batch8": tokens_per_second(runner, 8),
        }
        print(variant, rows[variant], flush=True)
    report.progress(len(VARIANTS), len(VARIANTS), "done")
    base = rows["float32"]
    results = {
        "variants": rows,
        "int8_memory_ratio": rows["int8"]["parameter_bytes"] / base["parameter_bytes"],
        "int8_perplexity_delta": rows["int8"]["perplexity"] - base["perplexity"],
        "bfloat16_perplexity_delta": rows["bfloat16"]["perplexity"] - base["perplexity"],
    }
    report.write(
        "quantization",
        settings={**vars(args), "cpu_threads": torch.get_num_threads(), "paragraph": PARAGRAPH},
        results=results,
        headline=[
            (
                f"{variant}: MB / perplexity / tok/s batch 8",
                f"{r['parameter_bytes'] / 1e6:.0f} / {r['perplexity']:.1f} / {r['tok_s_batch8']:.1f}",
            )
            for variant, r in rows.items()
        ],
    )
    plot(rows, args.model, report.png("quantization"))


def plot(rows: dict[str, dict[str, float]], model: str, path: Path) -> None:
    fig, axes = figure(10, 3.4, ncols=3)
    names = list(rows)
    for ax, key, label in zip(
        axes,
        ("parameter_bytes", "perplexity", "tok_s_batch8"),
        ("weights (MB)", "perplexity (lower is better)", "tokens/s, batch 8"),
        strict=True,
    ):
        values = [rows[n][key] / (1e6 if key == "parameter_bytes" else 1) for n in names]
        ax.bar(names, values, color=["#4477aa", "#66ccee", "#ee6677"])
        ax.set_title(label)
    fig.suptitle(f"{model}: float32 vs bfloat16 vs dynamic int8 (CPU)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
