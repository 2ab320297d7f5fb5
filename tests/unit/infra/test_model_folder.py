"""The folder `kinfer models pull` writes is a standard one: transformers loads it as it loads a
hub folder, and llama.cpp's own converter (from the llama-cpp-python sdist `make setup` builds)
turns it into a GGUF that answers the same greedy tokens."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from kinfer.consumers.engine import GenerationInput, load_runner
from kinfer.consumers.engine.torch_runner import TorchRunner
from kinfer.schemas import ChatMessage, SamplingParams

LLAMA_CPP_SDIST = "llama-cpp-python==0.3.36"
QUESTION = [ChatMessage("user", "What is Kafka? Answer in one sentence.")]


def test_transformers_loads_the_folder_and_answers_as_kinfer_does(
    smollm2_dir: Path, smollm2: TorchRunner
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = json.loads((smollm2_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert (smollm2_dir / "generation_config.json").is_file()
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir, local_files_only=True)
    prompt = smollm2.render_chat(QUESTION)
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        generated = model.generate(ids, max_new_tokens=16, do_sample=False)
    theirs = tokenizer.decode(generated[0, ids.shape[1] :], skip_special_tokens=True)
    ours = smollm2.generate([GenerationInput(prompt, SamplingParams(max_tokens=16))])[0].text
    assert theirs == ours


@pytest.mark.slow
def test_llama_cpp_converts_the_folder_into_a_gguf_that_answers_the_same(
    smollm2_dir: Path, smollm2: TorchRunner, tmp_path: Path
) -> None:
    converter = _converter(tmp_path)
    out = tmp_path / "converted.gguf"
    done = subprocess.run(
        [sys.executable, str(converter), str(smollm2_dir), "--outfile", str(out), "--outtype", "f32"],
        env={**os.environ, "PYTHONPATH": str(converter.parent / "gguf-py")},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # The byte-level BPE path, not SentencePiece's (whose vocabulary would crash llama.cpp at load).
    assert _metadata(out, "tokenizer.ggml.model") == "gpt2"
    assert _metadata(out, "tokenizer.ggml.pre") == "smollm"
    converted = load_runner(str(out), engine="llama.cpp", threads=2)
    prompt = smollm2.render_chat(QUESTION)
    assert converted.render_chat(QUESTION) == prompt
    assert converted.count_tokens(prompt) == smollm2.count_tokens(prompt)
    sampling = SamplingParams(max_tokens=16)
    ours = smollm2.generate([GenerationInput(prompt, sampling)])[0].text
    assert converted.generate([GenerationInput(prompt, sampling)])[0].text == ours


def _metadata(path: Path, key: str) -> str:
    from gguf import GGUFReader

    field = GGUFReader(path).fields[key]
    return bytes(field.parts[field.data[0]]).decode()


def _converter(tmp_path: Path) -> Path:
    """convert_hf_to_gguf.py and its gguf-py from the sdist (pip's cache has it from `make setup`)."""
    sdists = tmp_path / "sdist"
    argv = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "-q",
        "-d",
        str(sdists),
    ]
    subprocess.run([*argv, LLAMA_CPP_SDIST], check=True, capture_output=True, timeout=600)
    (archive,) = sdists.glob("llama_cpp_python-*.tar.gz")
    root = tmp_path / "src"
    with tarfile.open(archive) as tar:
        wanted = [
            m
            for m in tar.getmembers()
            if "/vendor/llama.cpp/" in m.name
            and any(part in m.name for part in ("/convert_hf_to_gguf.py", "/conversion/", "/gguf-py/"))
        ]
        tar.extractall(root, members=wanted, filter="data")
    (script,) = root.glob("*/vendor/llama.cpp/convert_hf_to_gguf.py")
    return script
