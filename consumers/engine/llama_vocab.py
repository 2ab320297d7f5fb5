"""A GGUF model's tokenizer as the decode batch sees it (:class:`TextCodec`), through llama.cpp.

Tokens become text through llama.cpp's own pieces (the bytes each token stands for), fed to an
incremental UTF-8 decoder, so a character split over two tokens comes out whole. The chat
template is the GGUF's own (``tokenizer.chat_template``), rendered with the same sandboxed
Jinja settings transformers uses, so a chat becomes the same prompt on either engine.
"""

from __future__ import annotations

import codecs
import ctypes
import functools
import warnings
from collections.abc import Sequence
from typing import Any

import llama_cpp

from kinfer.consumers.engine.chat_template import render_plain
from kinfer.consumers.engine.constraints import GrammarTokenizer
from kinfer.schemas import ChatMessage

_PIECE = 256
"""Bytes of the buffer one token's piece is read into (grown when a piece is longer)."""


class PieceDetokenizer:
    """Token pieces in, whole UTF-8 characters out (special tokens say nothing)."""

    def __init__(self, vocab: LlamaCodec) -> None:
        self.vocab = vocab
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def push(self, token: int) -> str:
        return self._decoder.decode(self.vocab.piece(token))


class LlamaCodec:
    """The vocabulary of a loaded llama.cpp model."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self._vocab = llama_cpp.llama_model_get_vocab(model)
        self.vocab_size = int(llama_cpp.llama_vocab_n_tokens(self._vocab))
        # A chat ends at the template's end of turn as well as at end of text: every token
        # llama.cpp calls end-of-generation (eos, eot, <|im_end|>, ...).
        self.eos_ids = frozenset(
            t for t in range(self.vocab_size) if llama_cpp.llama_vocab_is_eog(self._vocab, t)
        )
        self.pad_id = min(self.eos_ids, default=0)
        self._template = _chat_template(model)

    def encode(self, text: str) -> list[int]:
        """The model's tokens for ``text``, its BOS first when the model wants one; special
        tokens written in the text (a chat template's) are parsed as such, as transformers does."""
        data = text.encode("utf-8", "surrogatepass")
        room = len(data) + 8
        while True:
            out = (llama_cpp.llama_token * room)()
            n = llama_cpp.llama_tokenize(self._vocab, data, len(data), out, room, True, True)
            if n >= 0:
                return list(out[:n])
            room = -n

    def piece(self, token: int) -> bytes:
        """The bytes ``token`` stands for ("" for a special token)."""
        return _piece(self._vocab, token, special=False)

    def decode(self, ids: list[int]) -> str:
        return b"".join(self.piece(t) for t in ids).decode("utf-8", errors="replace")

    def detokenizer(self) -> PieceDetokenizer:
        return PieceDetokenizer(self)

    def render_chat(self, messages: Sequence[ChatMessage]) -> str:
        if self._template is None:
            return render_plain(messages)
        turns: Any = [{"role": m.role, "content": m.content} for m in messages]
        return str(self._template(messages=turns).prompt)

    @functools.cached_property
    def _grammar(self) -> GrammarTokenizer:
        import llguidance.llamacpp

        with warnings.catch_warnings():  # llguidance still calls llama_token_get_attr, now deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            return llguidance.llamacpp.lltokenizer_from_vocab(self._vocab, eos_token=sorted(self.eos_ids))

    def grammar_tokenizer(self) -> GrammarTokenizer:
        """llguidance's view of the vocabulary (about a second: built on first use)."""
        return self._grammar


def _piece(vocab: Any, token: int, *, special: bool) -> bytes:
    size = _PIECE
    while True:
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_token_to_piece(vocab, token, buf, size, 0, special)
        if n >= 0:
            return bytes(buf.raw[:n])
        size = -n


def _chat_template(model: Any) -> Any:
    """The GGUF's chat template as a formatter, or None when it has none."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    raw = llama_cpp.llama_model_chat_template(model, None)
    if not raw:
        return None
    vocab = llama_cpp.llama_model_get_vocab(model)

    def token_text(token: int) -> str:
        return _piece(vocab, token, special=True).decode("utf-8", errors="replace") if token >= 0 else ""

    bos = token_text(llama_cpp.llama_vocab_bos(vocab))
    eos = token_text(llama_cpp.llama_vocab_eos(vocab))
    return Jinja2ChatFormatter(raw.decode("utf-8"), eos_token=eos, bos_token=bos, add_generation_prompt=True)
