"""Decoding constrained to a JSON Schema (OpenAI's ``response_format``), with llguidance.

Why llguidance: it compiles a JSON Schema into a grammar in about a millisecond and computes,
per step, which of the vocabulary's tokens may come next (a bitmask over the logits), for
any tokenizer whose tokens are byte strings: a Hugging Face fast tokenizer as is, and
kinfer-tiny's bytes through a small wrapper. It is a Rust library with a 3 MB wheel and no
dependencies, and vLLM and SGLang use it for the same job. A row with a constraint gets the
mask applied before it picks, and its matcher consumes the token it picked; end of
sequence is allowed only where the grammar accepts, so a finished answer always parses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import llguidance
import torch

GrammarTokenizer = llguidance.LLTokenizer
Matcher = llguidance.LLMatcher


def grammar_of(schema: dict[str, Any]) -> str:
    """The llguidance grammar of a JSON Schema; compact JSON (no free whitespace: a model
    cannot spend its tokens on blanks)."""
    return Matcher.grammar_from_json_schema(schema, defaults={"whitespace_flexible": False})


def schema_problem(schema: dict[str, Any], tokenizer: GrammarTokenizer) -> str | None:
    """Why a schema cannot constrain decoding (unsupported keywords, contradictions), or None."""
    try:
        grammar = grammar_of(schema)
        is_error, messages = Matcher.validate_grammar_with_warnings(grammar, tokenizer)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - a Rust panic arrives as pyo3's PanicException
        return f"json_schema cannot be compiled: {type(exc).__name__}: {str(exc)[:300]}"
    return f"json_schema cannot be compiled: {'; '.join(messages)}"[:500] if is_error else None


def matcher(schema: dict[str, Any], tokenizer: GrammarTokenizer) -> Matcher:
    """A fresh parse state for one sequence."""
    return Matcher(tokenizer, grammar_of(schema))


def mask_logits(logits: torch.Tensor, rows: Sequence[tuple[int, Matcher]]) -> None:
    """Forbid, in place, every token each constrained row's grammar does not allow next.
    ``logits`` is (batch, vocab) float32 on the CPU; ``rows`` (row index, its matcher)."""
    if not rows:
        return
    # The matcher's own bitmask (32 tokens an int32), not llguidance.torch's: importing that
    # module compiles a kernel with torch.compile, which costs every worker 2.4 s at start-up.
    bitmask = torch.stack(
        [torch.frombuffer(bytearray(state.compute_bitmask()), dtype=torch.int32) for _, state in rows]
    )
    # Unpacked here rather than with llguidance's torch.compile'd kernel: no compiler needed,
    # no first-request compile pause.
    allowed = ((bitmask.unsqueeze(-1) >> _BITS) & 1).bool().reshape(len(rows), -1)
    width = min(allowed.shape[1], logits.shape[1])
    index = torch.tensor([row for row, _ in rows])
    picked = logits[index]
    picked[:, :width].masked_fill_(~allowed[:, :width], float("-inf"))
    picked[:, width:] = float("-inf")  # ids past the tokenizer's are padding of the model's head
    logits[index] = picked


_BITS = torch.arange(32, dtype=torch.int32)


def byte_tokenizer(
    byte_tokens: int, special: Sequence[bytes], eos_id: int, bos_id: int, encode: Callable[[bytes], list[int]]
) -> GrammarTokenizer:
    """A tokenizer whose first ``byte_tokens`` ids are the single bytes (kinfer-tiny's), then
    ``special`` tokens the grammar never produces."""

    class Bytes:
        eos_token_id = eos_id
        bos_token_id = bos_id
        tokens = [bytes([b]) for b in range(byte_tokens)] + list(special)
        special_token_ids = list(range(byte_tokens, byte_tokens + len(special)))

        def __call__(self, text: bytes) -> list[int]:
            return encode(text)

    return GrammarTokenizer(llguidance.TokenizerWrapper(Bytes()))


def hf_tokenizer(tokenizer: Any, eos_ids: frozenset[int]) -> GrammarTokenizer:
    """The grammar's view of a Hugging Face fast tokenizer (about a second: cache it)."""
    import llguidance.hf

    return llguidance.hf.from_tokenizer(tokenizer, eos_token=sorted(eos_ids))
