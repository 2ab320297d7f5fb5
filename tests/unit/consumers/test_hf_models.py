"""A local Hugging Face directory through the same loader `kinfer worker --model DIR` uses.

The test makes its own model: a BPE tokenizer trained here on a few sentences,
and a tiny random Llama, saved as config + safetensors + tokenizer files.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kinfer.consumers.engine import GenerationInput, load_runner
from kinfer.consumers.engine.torch_runner import TorchRunner
from kinfer.schemas import SamplingParams
from tests.model_dirs import make_model_dir


@pytest.fixture(scope="module")
def hf_runner(tmp_path_factory: pytest.TempPathFactory) -> TorchRunner:
    path = make_model_dir(tmp_path_factory.mktemp("tiny-llama"))
    assert (path / "model.safetensors").exists() and (path / "tokenizer.json").exists()
    runner = load_runner(str(path), device="cpu")
    assert isinstance(runner, TorchRunner)
    return runner


def test_loads_a_local_directory_and_generates(hf_runner: TorchRunner) -> None:
    assert hf_runner.name.startswith("tiny-llama") and hf_runner.max_context == 256
    out = hf_runner.generate([GenerationInput("Kafka keeps", SamplingParams(max_tokens=12))])[0]
    assert out.completion_tokens >= 1 and out.prompt_tokens == hf_runner.count_tokens("Kafka keeps")


def test_batched_greedy_equals_one_at_a_time(hf_runner: TorchRunner) -> None:
    sampling = SamplingParams(max_tokens=10)
    prompts = ["Kafka", "Workers batch requests", "Tokens stream back to", "Admission decides what may"]
    alone = [hf_runner.generate([GenerationInput(p, sampling)])[0].text for p in prompts]
    together = [o.text for o in hf_runner.generate([GenerationInput(p, sampling) for p in prompts])]
    assert together == alone


def test_streamed_pieces_add_up(hf_runner: TorchRunner) -> None:
    pieces: list[str] = []
    out = hf_runner.generate(
        [GenerationInput("Workers", SamplingParams(max_tokens=16))],
        on_text=lambda _row, delta: pieces.append(delta.text),
    )[0]
    assert "".join(pieces) == out.text


def test_a_directory_without_config_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown model"):
        load_runner(str(tmp_path))


def test_greedy_tokens_match_transformers_own_generate(hf_runner: TorchRunner) -> None:
    """Our KV-cache handling against the library's reference decoding."""
    from kinfer.consumers.engine.hf import HFCausalLM, HFCodec

    assert isinstance(hf_runner.module, HFCausalLM) and isinstance(hf_runner.tokenizer, HFCodec)
    model, tokenizer = hf_runner.module.inner, hf_runner.tokenizer.tokenizer
    for prompt in ("Kafka", "Workers batch requests"):
        ids = torch.tensor([hf_runner.tokenizer.encode(prompt)])
        with torch.inference_mode():
            reference = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=8,
                do_sample=False,
                min_new_tokens=8,
                pad_token_id=tokenizer.pad_token_id,
            )
        expected = tokenizer.decode(reference[0, ids.shape[1] :], skip_special_tokens=True)
        ours = hf_runner.generate([GenerationInput(prompt, SamplingParams(max_tokens=8))])[0].text
        assert ours == expected[: len(ours)] and (len(ours) == len(expected) or ours != "")
