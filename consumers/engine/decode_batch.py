"""Iteration-level (continuous) batching: sequences join and leave between decode steps.

The batch keeps each sequence's text, stop sequences, log-probabilities and choices, and
picks every token itself (penalties, bias, seeds, JSON-Schema masks: ``sampling.py``,
``constraints.py``), so every engine decodes by the same rules. Where the model's KV state
lives is a :class:`SequenceStore`: kinfer's left-padded torch cache (``padded_cache.py``) or
llama.cpp's sequences (``llama_cpp.py``); the store only prefills, decodes a token per row
and forgets rows.

A request for ``n`` choices is prefilled once and its row repeated ``n`` times; it
leaves the batch when the last of its choices finished.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Literal, Protocol, TypeVar

import torch

from kinfer.consumers.engine.constraints import Matcher, mask_logits, matcher
from kinfer.consumers.engine.model_api import Detokenizer, TextCodec
from kinfer.consumers.engine.runner import Ended, GenerationInput, GenerationOutput, TextDelta
from kinfer.consumers.engine.sampling import RowLogprobs, logprobs_of, make_generator, pick_batch
from kinfer.schemas import TokenLogprob, TopLogprob

K = TypeVar("K")


class SequenceStore(Protocol):
    """A model and the KV state of the batch's rows, in row order."""

    @property
    def max_context(self) -> int:
        """Most tokens (prompt + generated) one row may hold."""
        ...

    def prefill(self, prompts: Sequence[list[int]], copies: Sequence[int]) -> torch.Tensor:
        """Append rows: prompt ``i`` becomes ``copies[i]`` rows from one prefill. Returns the
        new rows' next-token logits, (rows, vocab). On failure nothing was appended."""
        ...

    def decode(self, tokens: Sequence[int]) -> torch.Tensor:
        """Feed one token to every row; the next logits, (rows, vocab)."""
        ...

    def keep(self, rows: Sequence[int]) -> None:
        """Keep only these rows (ascending indices); the others' state is freed."""
        ...


@dataclass
class SequenceState(Generic[K]):
    """Decoding state of one sequence (one choice of a request)."""

    key: K
    item: GenerationInput
    prompt_len: int
    gen: torch.Generator | None
    detok: Detokenizer
    group: int
    """The request's number in this batch: its ``n`` choices share it."""
    choice: int = 0
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    finish: Literal["stop", "length"] | None = None
    streamed: int = 0
    """Characters of ``text`` already handed to the sink."""
    constraint: Matcher | None = None
    """Where a JSON Schema constrains it: the grammar's parse state."""
    logprobs: list[TokenLogprob] = field(default_factory=list)
    token_ends: list[int] = field(default_factory=list)
    """Length of ``text`` after each token (which text a token's log-probability goes with)."""
    streamed_logprobs: int = 0

    @property
    def holdback(self) -> int:
        """Trailing characters that may still turn out to start a stop sequence."""
        return max((len(s) for s in self.item.sampling.stop), default=1) - 1

    def cut(self, at: int) -> None:
        """The text ends at ``at`` (a stop sequence begins there): tokens past it go too."""
        self.text = self.text[:at]
        kept = sum(1 for start in [0, *self.token_ends[:-1]] if start < at)
        del self.logprobs[kept:]
        self.token_ends = [min(end, at) for end in self.token_ends[:kept]]

    def output(self) -> GenerationOutput:
        logprobs = tuple(self.logprobs) if self.item.sampling.logprobs else None
        return GenerationOutput(
            self.text, self.finish or "length", self.prompt_len, len(self.tokens), logprobs
        )


class DecodeBatch(Generic[K]):
    def __init__(self, store: SequenceStore, tokenizer: TextCodec, device: torch.device) -> None:
        self.store = store
        self.tokenizer = tokenizer
        self.device = device
        """Where the sampling generators live."""
        self.rows: list[SequenceState[K]] = []
        self._logits = torch.zeros((0, 0), device=device)
        self._groups = 0
        self._parked: dict[int, list[SequenceState[K]]] = {}
        """Finished choices of requests whose other choices still decode."""

    def __len__(self) -> int:
        return len(self.rows)

    def keys(self) -> list[K]:
        """One key per request decoding now (its choices share it)."""
        firsts: dict[int, K] = {}
        for row in self.rows:
            firsts.setdefault(row.group, row.key)
        return list(firsts.values())

    @torch.inference_mode()
    def join(self, items: Sequence[tuple[K, GenerationInput]]) -> None:
        """Prefill new sequences together and merge them into the running batch (a request's
        ``n`` choices: one prefill, its row repeated)."""
        if not items:
            return
        prompts = [self.tokenizer.encode(item.prompt) for _, item in items]
        new_rows: list[SequenceState[K]] = []
        for number, ((key, item), prompt) in enumerate(zip(items, prompts, strict=True)):
            group = self._groups + number
            for choice in range(item.sampling.n):
                gen = make_generator(item.sampling, self.device, choice)
                detok = self.tokenizer.detokenizer()
                row = SequenceState(key, item, len(prompt), gen, detok, group, choice)
                if item.sampling.json_schema is not None:
                    row.constraint = matcher(item.sampling.json_schema, self.tokenizer.grammar_tokenizer())
                new_rows.append(row)
        # Last: a failure before or in the prefill leaves the batch as it was.
        logits = self.store.prefill(prompts, [item.sampling.n for _, item in items])
        self._groups += len(items)
        self.rows += new_rows
        self._logits = torch.cat([self._logits.to(logits.dtype), logits]) if len(self._logits) else logits

    @torch.inference_mode()
    def step(self, on_text: Callable[[K, TextDelta], None] | None = None) -> list[tuple[K, Ended]]:
        """Pick one token per sequence; return the requests that finished; decode the rest one step."""
        picks = self._pick()
        if on_text is not None:
            self._stream(on_text)
        keep = [i for i, row in enumerate(self.rows) if not row.finish]
        finished = [row for row in self.rows if row.finish]
        done: list[tuple[K, Ended]] = list(self._complete(finished, {self.rows[i].group for i in keep}))
        if len(keep) < len(self.rows):
            self._select(keep)
        if self.rows:
            self._logits = self.store.decode([picks[i] for i in keep])
        return done

    def _complete(
        self, finished: list[SequenceState[K]], running: set[int]
    ) -> list[tuple[K, GenerationOutput]]:
        """The requests whose last choice finished now, their choices in order."""
        done = []
        for row in finished:
            self._parked.setdefault(row.group, []).append(row)
        for group in [g for g in self._parked if g not in running]:
            rows = sorted(self._parked.pop(group), key=lambda r: r.choice)
            first, *more = (row.output() for row in rows)
            done.append((rows[0].key, dataclasses.replace(first, more=tuple(more))))
        return done

    def remove(self, keep: Callable[[K], bool]) -> list[K]:
        dropped = [key for key in self.keys() if not keep(key)]
        if dropped:
            self._select([i for i, row in enumerate(self.rows) if keep(row.key)])
            running = {row.group for row in self.rows}
            self._parked = {g: rows for g, rows in self._parked.items() if g in running}
        return dropped

    def progress(self, key: K) -> GenerationOutput | None:
        rows = [row for row in self.rows if row.key == key]
        if not rows:
            return None
        rows += self._parked.get(rows[0].group, [])
        first, *more = (row.output() for row in sorted(rows, key=lambda r: r.choice))
        return dataclasses.replace(first, more=tuple(more))

    def _pick(self) -> list[int]:
        picks = self._choose()
        scored = self._score(picks)
        for row, token, logprob in zip(self.rows, picks, scored, strict=True):
            self._advance(row, token, logprob)
        return picks

    def _choose(self) -> list[int]:
        """One token per row from the last logits (a rank group's followers are told instead)."""
        samplings = [row.item.sampling for row in self.rows]
        generated = [row.tokens for row in self.rows]
        logits = self._logits.float().cpu()
        constrained = [(i, row.constraint) for i, row in enumerate(self.rows) if row.constraint is not None]
        if constrained:
            logits = logits.clone()  # the model's own stay for the log-probabilities
            mask_logits(logits, constrained)
        return pick_batch(logits, samplings, [row.gen for row in self.rows], generated)

    def _score(self, picks: list[int]) -> list[RowLogprobs | None]:
        """The log-probabilities of the picks, for rows that asked (followers have none to give)."""
        samplings = [row.item.sampling for row in self.rows]
        if not any(sampling.logprobs for sampling in samplings):
            return [None] * len(picks)  # no second copy of the logits off the device per step
        return logprobs_of(self._logits.float().cpu(), samplings, picks)

    def _token_logprob(self, token: int, scored: RowLogprobs) -> TokenLogprob:
        logprob, top = scored
        alternatives = tuple(TopLogprob(self.tokenizer.decode([t]), lp) for t, lp in top)
        return TokenLogprob(self.tokenizer.decode([token]), logprob, alternatives)

    def _advance(self, row: SequenceState[K], token: int, scored: RowLogprobs | None) -> None:
        sampling = row.item.sampling
        if token in self.tokenizer.eos_ids:
            row.finish = "stop"
            return
        if row.constraint is not None:
            row.constraint.consume_token(token)
        row.tokens.append(token)
        row.text += row.detok.push(token)
        row.token_ends.append(len(row.text))
        if scored is not None:
            row.logprobs.append(self._token_logprob(token, scored))
        for stop in sampling.stop:
            cut = row.text.find(stop)
            if cut >= 0:
                row.cut(cut)
                row.finish = "stop"
                return
        if row.constraint is not None and row.constraint.is_stopped():
            row.finish = "stop"  # the JSON is complete: nothing may follow it
        elif (
            len(row.tokens) >= sampling.max_tokens
            or row.prompt_len + len(row.tokens) >= self.store.max_context
        ):
            row.finish = "length"

    def _stream(self, on_text: Callable[[K, TextDelta], None]) -> None:
        for row in self.rows:
            final = len(row.text) if row.finish else max(row.streamed, len(row.text) - row.holdback)
            tokens = sum(1 for end in row.token_ends if end <= final) if not row.finish else len(row.logprobs)
            tokens = min(tokens, len(row.logprobs))
            if final > row.streamed or tokens > row.streamed_logprobs:
                logprobs = (
                    tuple(row.logprobs[row.streamed_logprobs : tokens])
                    if row.item.sampling.logprobs
                    else None
                )
                on_text(row.key, TextDelta(row.text[row.streamed : final], row.choice, logprobs))
                row.streamed, row.streamed_logprobs = final, tokens

    def _select(self, keep: list[int]) -> None:
        self.rows = [self.rows[i] for i in keep]
        self.store.keep(keep)
        self._logits = self._logits[torch.tensor(keep, dtype=torch.long, device=self._logits.device)]
