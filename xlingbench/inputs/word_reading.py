"""How sentences are read into model windows, and which subwords belong to which word.

The reading rules of the word vectors (:mod:`xlingbench.inputs.word_vectors`), apart from any
model so they are testable with a tokenizer alone:

Reading: each sentence is tokenised whole, as the model was trained to read text, with the
tokenizer's own pre-tokenisation (tokenising word by word would put a word-start marker before
every word: +62% subwords in Chinese). Subwords are mapped to words by character offsets: a
subword belongs to the word holding the first word character it covers, so one that straddles
two words belongs to the word where it starts, and one made of whitespace only (a lone ``▁``)
belongs to none. A word left without a subword of its own gets no vector and is counted.

Long sentences: when a sentence has more subwords than fit in ``max_length`` (with the special
tokens), it is read in overlapping windows of that size, each starting half a window after the
previous one. A word's vector comes from the window holding all its subwords where it has the
most context: the larger min(subwords before it, subwords after it) in the window for
bidirectional states, the larger number of subwords before it for states that see only the left
(causal, teacher-forced decoder); ties go to the earlier window. A word in no window whole
(longer than half a window) is lost and counted. ``max_length`` is capped at what the model
reads: its tokenizer's ``model_max_length`` and the network's position embeddings
(:func:`model_positions`).
"""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Any, Sequence

from xlingbench.core.errors import UserError
from xlingbench.inputs.gold_words import Span

#: tokenizers without a real limit report a huge model_max_length; below this it is a limit
REAL_LIMIT = 10**6


@dataclass(frozen=True)
class Window:
    """One forward pass: special tokens around a stretch of one sentence's subwords, and the
    words whose vector it gives."""

    sentence: int
    input_ids: list[int]
    ranks: list[int]  # each word's rank among its sentence's words with a vector: its row there
    tokens: list[list[int]]  # each word's subword positions in input_ids


@dataclass(frozen=True)
class Encoded:
    """One sentence read: its windows, the positions of its words with a vector, the words lost,
    and how many subwords (special tokens aside) the sentence is read as."""

    windows: list[Window]
    positions: list[int]
    lost: int
    subwordless: int
    tokens: int


def model_positions(model: Any) -> int:
    """How many tokens the network reads at once: ``max_position_embeddings`` less the positions a
    RoBERTa-style embedding reserves up to its padding index; no limit for relative positions (T5)."""
    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if not isinstance(limit, int):
        return REAL_LIMIT
    padding = getattr(getattr(model, "embeddings", None), "padding_idx", None)
    return limit - (padding + 1 if isinstance(padding, int) else 0)


class Reader:
    """Reads sentences into model windows: the tokenizer, max_length and which context counts."""

    def __init__(self, tokenizer: Any, max_length: int, causal: bool) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise UserError("Word vectors need a fast (Rust) tokenizer for character offsets.", "Load the model's tokenizer with use_fast=True.")
        limit = getattr(tokenizer, "model_max_length", None)
        if isinstance(limit, int) and limit < REAL_LIMIT:
            max_length = min(max_length, limit)  # the module docstring: capped at what the model reads
        self.tokenizer, self.max_length, self.causal = tokenizer, max_length, causal

    def encode(self, index: int, text: str, spans: list[Span]) -> Encoded:
        """Sentence ``index``: its windows and which words each gives a vector of (module docstring)."""
        encoding = self.tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True)
        ids, special = list(encoding["input_ids"]), encoding["special_tokens_mask"]
        body = [t for t, flag in enumerate(special) if not flag]
        first, end = (body[0], body[-1] + 1) if body else (len(ids), len(ids))
        prefix, content, suffix = ids[:first], ids[first:end], ids[end:]
        capacity = self.max_length - len(prefix) - len(suffix)
        if capacity < 1:
            raise UserError(f"max_length={self.max_length} leaves no room beside the {len(prefix) + len(suffix)} special tokens.", "Set max_length to 8 or more.")
        word_tokens: dict[int, list[int]] = {}
        for t, word in enumerate(owners(encoding["offset_mapping"][first:end], spans)):
            if word is not None:
                word_tokens.setdefault(word, []).append(t)
        starts = window_starts(len(content), capacity)
        chosen = {w: self._best_window(tokens, starts, capacity, len(content)) for w, tokens in sorted(word_tokens.items())}
        positions = [w for w, k in chosen.items() if k is not None]
        windows = []
        for k, start in enumerate(starts):
            members = [(rank, w) for rank, w in enumerate(positions) if chosen[w] == k]
            if members:
                shift = len(prefix) - start
                windows.append(Window(index, prefix + content[start : start + capacity] + suffix,
                                       [rank for rank, _ in members], [[t + shift for t in word_tokens[w]] for _, w in members]))
        return Encoded(windows, positions, len(chosen) - len(positions), len(spans) - len(word_tokens), len(content))

    def count(self, text: str) -> int:
        """How many subwords (special tokens aside) ``text`` is read as."""
        encoding = self.tokenizer(text, return_special_tokens_mask=True)
        return len(encoding["special_tokens_mask"]) - sum(encoding["special_tokens_mask"])

    def _best_window(self, tokens: list[int], starts: list[int], capacity: int, length: int) -> int | None:
        """The window holding all of ``tokens`` where they have the most context; None if none holds them."""
        best, most = None, -1
        for k, start in enumerate(starts):
            end = min(start + capacity, length)
            if start <= tokens[0] and tokens[-1] < end:
                before, after = tokens[0] - start, end - 1 - tokens[-1]
                context = before if self.causal else min(before, after)
                if context > most:
                    best, most = k, context
        return best


def owners(offsets: Sequence[tuple[int, int]], spans: list[Span]) -> list[int | None]:
    """Per subword, the word holding the first word character it covers (None: whitespace only)."""
    ends = [b for _, b in spans]
    owners: list[int | None] = []
    for a, b in offsets:
        word = bisect_right(ends, a)  # the first word ending after the subword starts
        owners.append(word if a < b and word < len(spans) and spans[word][0] < b else None)
    return owners


def window_starts(length: int, capacity: int) -> list[int]:
    """Where the windows of a ``length``-subword sentence start: every half window until the end is in one."""
    starts = [0]
    while starts[-1] + capacity < length:
        starts.append(starts[-1] + max(1, capacity // 2))
    return starts
