"""Byte-level tokenizer of kinfer-tiny: every UTF-8 byte is a token, plus BOS/EOS/PAD."""

from __future__ import annotations

import codecs
import functools
from collections.abc import Sequence

from kinfer.consumers.engine.chat_template import render_plain
from kinfer.consumers.engine.constraints import GrammarTokenizer, byte_tokenizer
from kinfer.schemas import ChatMessage

BOS = 256
EOS = 257
PAD = 258
VOCAB_SIZE = 259


class ByteDetokenizer:
    """UTF-8 bytes in, whole characters out."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def push(self, token: int) -> str:
        return self._decoder.decode(bytes([token])) if token < 256 else ""


class ByteTokenizer:
    bos_id = BOS
    eos_id = EOS
    pad_id = PAD
    eos_ids = frozenset({EOS})
    vocab_size = VOCAB_SIZE

    def detokenizer(self) -> ByteDetokenizer:
        return ByteDetokenizer()

    def render_chat(self, messages: Sequence[ChatMessage]) -> str:
        return render_plain(messages)

    def encode(self, text: str) -> list[int]:
        """BOS followed by the text's UTF-8 bytes."""
        return [BOS, *text.encode("utf-8", "surrogatepass")]

    def grammar_tokenizer(self) -> GrammarTokenizer:
        return _grammar_tokenizer()

    def decode(self, ids: list[int]) -> str:
        """Text of the byte tokens; special tokens are dropped, broken UTF-8 replaced."""
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")


@functools.cache
def _grammar_tokenizer() -> GrammarTokenizer:
    return byte_tokenizer(256, [b"<bos>", b"<eos>", b"<pad>"], EOS, BOS, encode=list)
