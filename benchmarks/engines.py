"""The engines side by side on SmolLM2-135M-Instruct's weights, in one run, interleaved:
kinfer's torch engine, llama.cpp in the worker's process, llama.cpp's llama-server behind
``--engine openai``; and what the pipeline keeps of each.

    python -m benchmarks.engines [--repeats 3] [--threads 1,2] [--batches 1,16,64]

1. Engines alone: tokens/s and time to the first token at batch 1, 16 and 64 (32 new tokens,
   greedy, ~48-token chat prompts), medians of ``--repeats`` rounds, every configuration once a
   round in turn: torch float32 and bfloat16; llama.cpp Q8_0, BF16 and F32 through kinfer's
   runner (the worker's batch: stops, streaming, sampling); llama.cpp Q8_0 driven bare through
   its batch API (greedy argmax, no kinfer bookkeeping: "llama.cpp alone"); llama-server Q8_0
   called directly (N concurrent streams) and through kinfer's openai runner. Each at each
   thread count.
2. Pipeline / engine alone at saturation (the ``ceiling`` method): a private stack with one
   ``--engine llama.cpp`` worker against the same runner under the worker's own scheduler; one
   ``--engine openai`` worker against llama-server driven directly with the same window.
3. Added latency of ``--engine openai`` at light load (the ``overhead`` method): one request at
   a time through the pipeline against the same call straight to llama-server.
4. Perplexity of each GGUF type and of the torch engine on the ``quantization`` paragraph.

Writes results/engines.json and .png.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import torch

from benchmarks import report
from benchmarks.engine_loop import continuous, poisson
from benchmarks.load import open_loop
from benchmarks.plots import figure
from benchmarks.quantization import PARAGRAPH
from benchmarks.stack import MODELS, pipeline, private_stack
from kinfer.consumers.engine import GenerationInput, ModelRunner, load_runner
from kinfer.consumers.engine.llama_cpp import LlamaCppRunner
from kinfer.consumers.engine.remote import RemoteRunner
from kinfer.consumers.engine.runner import TextDelta
from kinfer.consumers.engine.torch_runner import TorchRunner
from kinfer.infra.demo import percentile
from kinfer.infra.models import CATALOG, DEFAULT_MODEL, ModelStore
from kinfer.infra.models.gguf import GgufType, ensure_gguf
from kinfer.infra.models.pull import ensure_local
from kinfer.infra.stack.llama_server import LlamaServer, LlamaServerConfig
from kinfer.infra.stack.process import free_port
from kinfer.schemas import ChatMessage, SamplingParams

QUESTIONS = [
    "What is the capital of France?",
    "Name three colours of the rainbow.",
    "What is Apache Kafka used for?",
    "Say hello in Spanish and in German.",
    "Why is the sky blue? One sentence.",
    "Give me a synonym for happy.",
    "What is two plus two?",
    "Write a haiku about rain.",
]
NEW_TOKENS = 32
Measure = Callable[[list[str]], tuple[float, float]]
"""Prompts in, (tokens/s, median seconds to each row's first token) out."""


def gguf(kind: GgufType) -> Path:
    return ensure_gguf(CATALOG[DEFAULT_MODEL], ModelStore(MODELS), kind)


def timed(runner: ModelRunner, prompts: list[str]) -> tuple[float, float]:
    sampling = SamplingParams(max_tokens=NEW_TOKENS)
    first: dict[int, float] = {}
    started = time.perf_counter()

    def seen(row: int, _delta: TextDelta) -> None:
        first.setdefault(row, time.perf_counter() - started)

    outs = runner.generate([GenerationInput(p, sampling) for p in prompts], seen)
    wall = time.perf_counter() - started
    return sum(o.completion_tokens for o in outs) / wall, statistics.median(first.values() or [wall])


def bare_llama(runner: LlamaCppRunner, prompts: list[str]) -> tuple[float, float]:
    """llama.cpp's batch API alone: prefill every prompt, then one llama_decode per step of
    each live row's argmax, until 32 tokens or its end of turn."""
    engine, eos = runner.engine, runner.tokenizer.eos_ids
    ids = [runner.tokenizer.encode(p) for p in prompts]
    seqs = [engine.free.pop() for _ in ids]
    started = time.perf_counter()
    try:
        logits = engine.forward([(s, p, 0) for s, p in zip(seqs, ids, strict=True)], last_only=True)
        ttft = time.perf_counter() - started
        live = list(range(len(ids)))
        pos = [len(p) for p in ids]
        tokens = 0
        for _ in range(NEW_TOKENS):
            picks = logits.argmax(dim=-1).tolist()
            stepping = [(row, pick) for row, pick in zip(live, picks, strict=True) if pick not in eos]
            tokens += len(stepping)
            live = [row for row, _ in stepping]
            if not live:
                break
            logits = engine.forward([(seqs[r], [t], pos[r]) for r, t in stepping], last_only=True)
            pos = [p + 1 if r in live else p for r, p in enumerate(pos)]
        return tokens / (time.perf_counter() - started), ttft
    finally:
        for seq in seqs:
            engine.release(seq)


def direct_server(url: str, prompts: list[str], window: int = 64) -> tuple[float, float]:
    """llama-server called directly: ``len(prompts)`` streaming completions, ``window`` at once."""

    async def run() -> tuple[float, float]:
        gate = asyncio.Semaphore(window)
        firsts: list[float] = []
        tokens = 0
        async with httpx.AsyncClient(base_url=url + "/", timeout=600) as client:
            started = time.perf_counter()

            async def one(prompt: str) -> None:
                nonlocal tokens
                body = {"prompt": prompt, "max_tokens": NEW_TOKENS, "temperature": 0, "stream": True}
                body["stream_options"] = {"include_usage": True}
                async with gate, client.stream("POST", "completions", json=body) as response:
                    seen = False
                    async for line in response.aiter_lines():
                        if line.startswith("data: {") and not seen and '"text":"' in line:
                            firsts.append(time.perf_counter() - started)
                            seen = True
                        if '"usage"' in line and '"completion_tokens"' in line:
                            tokens += int(line.split('"completion_tokens":')[1].split(",")[0].split("}")[0])

            await asyncio.gather(*(one(p) for p in prompts))
            return tokens / (time.perf_counter() - started), statistics.median(firsts or [0.0])

    return asyncio.run(run())


@contextmanager
def servers(threads: list[int], window: int) -> Iterator[dict[int, LlamaServer]]:
    """One llama-server (Q8_0) per thread count, each with ``window`` slots."""
    started: dict[int, LlamaServer] = {}
    try:
        for t in threads:
            state = Path(report.RESULTS) / f"llama-server-{t}"
            config = LlamaServerConfig(
                gguf("Q8_0"), state, port=free_port(), parallel=window, context=window * 128, threads=t
            )
            started[t] = LlamaServer(config)
            started[t].start()
        yield started
    finally:
        for server in started.values():
            server.stop()


def engines_alone(args: argparse.Namespace, hosts: dict[int, LlamaServer]) -> dict[str, Any]:
    hf = ensure_local(DEFAULT_MODEL, ModelStore(MODELS))
    configs: dict[str, Callable[[int], Measure]] = {}
    loaded: dict[tuple[str, int], Any] = {}

    def once(key: str, threads: int, load: Callable[[], Any]) -> Any:
        if (key, threads) not in loaded:
            loaded[key, threads] = load()
        return loaded[key, threads]

    def torch_engine(dtype: str) -> Callable[[int], Measure]:
        def measure(threads: int) -> Measure:
            runner = once(dtype, threads, lambda: load_runner(hf, dtype=dtype, device="cpu"))

            def go(prompts: list[str]) -> tuple[float, float]:
                torch.set_num_threads(threads)  # torch's pool is the process's: set per run
                return timed(runner, prompts)

            return go

        return measure

    def llama_engine(kind: GgufType, bare: bool = False) -> Callable[[int], Measure]:
        def measure(threads: int) -> Measure:
            runner = once(
                kind,
                threads,
                lambda: load_runner(
                    str(gguf(kind)),
                    engine="llama.cpp",
                    threads=threads,
                    max_batch_tokens=8192,
                    max_batch_requests=64,
                ),
            )
            return (
                (lambda prompts: bare_llama(runner, prompts))
                if bare
                else (lambda prompts: timed(runner, prompts))
            )

        return measure

    def server(via_kinfer: bool) -> Callable[[int], Measure]:
        def measure(threads: int) -> Measure:
            url = hosts[threads].config.url
            if not via_kinfer:
                return lambda prompts: direct_server(url, prompts)
            runner = once(
                "openai",
                threads,
                lambda: load_runner(DEFAULT_MODEL, engine="openai", engine_url=url, max_batch_requests=64),
            )
            return lambda prompts: timed(runner, prompts)

        return measure

    configs = {
        "torch float32": torch_engine("float32"),
        "torch bfloat16": torch_engine("bfloat16"),
        "llama.cpp Q8_0": llama_engine("Q8_0"),
        "llama.cpp BF16": llama_engine("BF16"),
        "llama.cpp F32": llama_engine("F32"),
        "llama.cpp Q8_0 bare": llama_engine("Q8_0", bare=True),
        "llama-server Q8_0 direct": server(via_kinfer=False),
        "llama-server Q8_0 via --engine openai": server(via_kinfer=True),
    }
    hf_runner = once("float32", args.threads[0], lambda: load_runner(hf, device="cpu"))
    prompts = [
        hf_runner.render_chat([ChatMessage("user", QUESTIONS[i % len(QUESTIONS)])])
        for i in range(max(args.batches))
    ]
    samples: dict[str, list[tuple[float, float]]] = {}
    cells = [(c, t, b) for c in configs for t in args.threads for b in args.batches]
    measures = {(c, t): configs[c](t) for c in configs for t in args.threads}
    for c, t in measures:  # warm every configuration once (first calls allocate and page in)
        measures[c, t](prompts[:2])
    for round_ in range(args.repeats):
        for i, (c, t, b) in enumerate(cells):
            report.progress(
                round_ * len(cells) + i, args.repeats * len(cells), f"{c}, {t} thread(s), batch {b}"
            )
            tok_s, ttft = measures[c, t](prompts[:b])
            samples.setdefault(f"{c}|{t}|{b}", []).append((tok_s, ttft))
            print(f"cell {c} | {t} threads | batch {b}: {tok_s:.1f} tok/s, ttft {ttft:.3f} s", flush=True)
    for runner in loaded.values():
        if isinstance(runner, RemoteRunner):
            runner.close()
    table: dict[str, Any] = {}
    for key, runs in samples.items():
        c, t, b = key.split("|")
        table.setdefault(c, {}).setdefault(t, {})[b] = {
            "tokens_per_s": statistics.median(r[0] for r in runs),
            "ttft_s": statistics.median(r[1] for r in runs),
            "runs": runs,
        }
    return table


def pipeline_ratios(args: argparse.Namespace, hosts: dict[int, LlamaServer]) -> dict[str, Any]:
    """Requests answered per second at saturation: the pipeline over the engine alone."""
    threads, n, window = args.threads[-1], args.saturation_requests, 64
    sampling = SamplingParams(max_tokens=NEW_TOKENS)
    run_id = f"{time.time():.0f}"
    texts = [f"Question {run_id}-{i}: {QUESTIONS[i % len(QUESTIONS)]}" for i in range(n)]
    out: dict[str, Any] = {}
    runner = load_runner(
        str(gguf("Q8_0")),
        engine="llama.cpp",
        threads=threads,
        max_batch_tokens=8192,
        max_batch_requests=window,
    )
    started = time.perf_counter()
    done = continuous(
        runner,
        poisson(1000.0, n, lambda i: (texts[i], sampling, "")),
        max_batch_requests=window,
        max_batch_tokens=8192,
    )
    alone = sum(d.tokens for d in done) / (max(d.finished_s for d in done) or time.perf_counter() - started)
    del runner
    worker = {
        "engine": "llama.cpp",
        "quantize": "int8",
        "max_batch_requests": str(window),
        "max_batch_tokens": "8192",
    }
    with private_stack(DEFAULT_MODEL) as stack, pipeline(stack, threads=threads, **worker):
        samples, wall = asyncio.run(
            open_loop(stack.settings, 1000.0, n, sampling, prompt=lambda i: "p" + texts[i], warm_up=4)
        )
    whole = sum(s["tokens"] for s in samples) / wall
    out["llama.cpp"] = {"engine_tokens_per_s": alone, "pipeline_tokens_per_s": whole, "ratio": whole / alone}
    url = hosts[threads].config.url
    direct, _ = direct_server(url, ["d" + t for t in texts], window)
    worker = {"engine": "openai", "engine_url": url, "max_batch_requests": str(window)}
    with private_stack(DEFAULT_MODEL) as stack, pipeline(stack, threads=threads, **worker):
        samples, wall = asyncio.run(
            open_loop(stack.settings, 1000.0, n, sampling, prompt=lambda i: "o" + texts[i], warm_up=4)
        )
        whole = sum(s["tokens"] for s in samples) / wall
        light, _ = asyncio.run(
            open_loop(stack.settings, 2.0, args.light_requests, SamplingParams(max_tokens=8), warm_up=2)
        )
    out["openai"] = {"engine_tokens_per_s": direct, "pipeline_tokens_per_s": whole, "ratio": whole / direct}
    direct_ms = [_direct_latency_ms(url, f"light {run_id}-{i}") for i in range(args.light_requests)]
    pipeline_ms = [s["e2e_ms"] for s in light]
    out["openai_light_load"] = {
        "direct_p50_ms": percentile(direct_ms, 50),
        "pipeline_p50_ms": percentile(pipeline_ms, 50),
        "added_p50_ms": percentile(pipeline_ms, 50) - percentile(direct_ms, 50),
        "direct_ms": direct_ms,
        "pipeline_ms": pipeline_ms,
    }
    return out


def _direct_latency_ms(url: str, prompt: str) -> float:
    started = time.perf_counter()
    body = {"prompt": prompt, "max_tokens": 8, "temperature": 0, "stream": True}
    with httpx.stream("POST", f"{url}/completions", json=body, timeout=60) as response:
        for _ in response.iter_lines():
            pass
    return (time.perf_counter() - started) * 1000


def perplexities() -> dict[str, float]:
    hf = ensure_local(DEFAULT_MODEL, ModelStore(MODELS))
    torch_runner = load_runner(hf, device="cpu")
    assert isinstance(torch_runner, TorchRunner)
    from benchmarks.quantization import perplexity

    out = {"torch float32": perplexity(torch_runner, PARAGRAPH)}
    ids = torch_runner.tokenizer.encode(PARAGRAPH)
    for kind in ("Q4_1", "Q8_0", "BF16", "F16", "F32"):
        runner = load_runner(str(gguf(kind)), engine="llama.cpp", threads=2)
        assert isinstance(runner, LlamaCppRunner)
        seq = runner.engine.free.pop()
        try:
            logits = runner.engine.forward([(seq, ids, 0)], last_only=False)
        finally:
            runner.engine.release(seq)
        nll = torch.nn.functional.cross_entropy(logits[:-1], torch.tensor(ids[1:]))
        out[f"llama.cpp {kind}"] = math.exp(float(nll))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    parser.add_argument("--batches", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16, 64])
    parser.add_argument("--saturation-requests", type=int, default=192)
    parser.add_argument("--light-requests", type=int, default=30)
    args = parser.parse_args()
    with servers(args.threads, window=max(args.batches)) as hosts:
        alone = engines_alone(args, hosts)
        report.progress(1, 3, "pipeline / engine at saturation")
        ratios = pipeline_ratios(args, hosts)
        print(f"pipeline {ratios}", flush=True)
    report.progress(2, 3, "perplexity")
    ppl = perplexities()
    report.progress(3, 3, "done")
    results = {"alone": alone, "pipeline": ratios, "perplexity": ppl}
    top, b = str(args.threads[-1]), str(max(args.batches))
    headline = [
        (
            f"{c}: tok/s at batch 1 / {b} ({top} threads)",
            f"{r[top]['1']['tokens_per_s']:.1f} / {r[top][b]['tokens_per_s']:.1f}",
        )
        for c, r in alone.items()
        if "1" in r[top]
    ]
    headline += [
        (f"pipeline / {e} alone at saturation", f"{ratios[e]['ratio']:.2f}") for e in ("llama.cpp", "openai")
    ]
    headline.append(
        ("--engine openai added p50 at light load (ms)", f"{ratios['openai_light_load']['added_p50_ms']:.1f}")
    )
    headline += [(f"perplexity {k}", f"{v:.2f}") for k, v in ppl.items()]
    report.write(
        "engines", settings={**vars(args), "new_tokens": NEW_TOKENS}, results=results, headline=headline
    )
    plot(alone, args, ppl)


def plot(alone: dict[str, Any], args: argparse.Namespace, ppl: dict[str, float]) -> None:
    fig, axes = figure(13, 4.2, ncols=len(args.threads) + 1)
    names = list(alone)
    width = 0.8 / len(args.batches)
    for ax, t in zip(axes, args.threads, strict=False):
        for j, b in enumerate(args.batches):
            values = [alone[c][str(t)][str(b)]["tokens_per_s"] for c in names]
            ax.barh([i + j * width for i in range(len(names))], values, height=width, label=f"batch {b}")
        ax.set_yticks([i + width for i in range(len(names))], names, fontsize=7)
        ax.set_xlabel("tokens / s")
        ax.set_title(f"{t} thread(s)")
        ax.legend(fontsize=7)
    axes[-1].barh(list(ppl), list(ppl.values()), color="#aa3377")
    axes[-1].set_title("perplexity (lower is better)")
    axes[-1].tick_params(axis="y", labelsize=7)
    fig.suptitle(
        "SmolLM2-135M: kinfer's torch engine, llama.cpp in the worker, llama-server behind --engine openai"
    )
    fig.tight_layout()
    fig.savefig(report.png("engines"), dpi=120)


if __name__ == "__main__":
    main()
