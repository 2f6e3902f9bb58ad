"""Sentences split into words, each word keeping its character span in the text the model reads.

Why spans: a model must read a sentence as written (tokenising words one by one puts a
word-start marker before every word: Chinese grows by 62% in subwords), and each word's vector
is then found by character offsets. Pre-tokenised text (``.tok``) is split on whitespace; raw
text by ICU's dictionary-based word breaker (``icu4py``), which segments Chinese, Japanese, Thai,
Khmer, Lao and Burmese too. Format characters (Unicode Cf, such as a byte-order mark) at the
start of a line are removed: invisible, yet a split would make a "word" of them.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from xlingbench.core.errors import UserError
from xlingbench.inputs.gold_words import Span

#: a line's text -> (the text the model reads, each word's [start, end) in it)
Segment = Callable[[str], tuple[str, list[Span]]]


@dataclass
class Lines:
    """One language's lines: the text the model reads, its words, each word's [start, end) in it."""

    texts: list[str]
    words: list[list[str]]
    spans: list[list[Span]]

    def __len__(self) -> int:
        return len(self.texts)

    def select(self, rows: list[int]) -> "Lines":
        return Lines([self.texts[i] for i in rows], [self.words[i] for i in rows], [self.spans[i] for i in rows])



def spaced(words: list[str]) -> tuple[str, list[Span]]:
    """The text of pre-tokenised words (joined by single spaces) and each word's span in it."""
    spans, start = [], 0
    for word in words:
        spans.append((start, start + len(word)))
        start += len(word) + 1
    return " ".join(words), spans


def pretokenised(text: str) -> tuple[str, list[Span]]:
    """A ``.tok`` line: words are separated by whitespace (runs of it count as one space)."""
    return spaced(text.split())


def icu_segmenter(language: str) -> Segment:
    """ICU's word breaker for ``language``: splits raw text of any script into word spans."""
    try:
        from icu4py.breakers import WordBreaker
    except ImportError as exc:
        raise UserError(
            "Raw text needs the ICU word breaker (package icu4py), which is not installed.",
            "pip install icu4py, or give pre-tokenised .tok files.",
        ) from exc
    locale = language.replace("-", "_")

    def segment(text: str) -> tuple[str, list[Span]]:
        # The breaker's pieces tile the text; their lengths give Python offsets (its own
        # segments() counts UTF-16 units, which differ beyond the Basic Multilingual Plane).
        spans, start = [], 0
        for piece in WordBreaker(text, locale):
            if not piece.isspace():
                spans.append((start, start + len(piece)))
            start += len(piece)
        return text, spans

    return segment


def read_lines(raw: list[str], segment: Segment) -> Lines:
    """Lines of one language: leading format characters removed, then segmented into words."""
    texts, words, spans = [], [], []
    for line in raw:
        text, line_spans = segment(strip_leading_format(line))
        texts.append(text)
        spans.append(line_spans)
        words.append([text[a:b] for a, b in line_spans])
    return Lines(texts, words, spans)


def strip_leading_format(line: str) -> str:
    """``line`` without the format characters (Unicode Cf: byte-order mark, direction marks) it starts with."""
    start = 0
    while start < len(line) and unicodedata.category(line[start]) == "Cf":
        start += 1
    return line[start:]


def spaced_lines(sentences: list[list[str]]) -> Lines:
    """Lines of words given without their text: read as pre-tokenised text."""
    pairs = [spaced(words) for words in sentences]
    return Lines([text for text, _ in pairs], sentences, [spans for _, spans in pairs])


@lru_cache(maxsize=1)
def icu_tokenizer_name() -> str:
    """What raw text was split with, for the record (package and ICU data versions)."""
    from importlib.metadata import version

    import icu4py

    return f"icu4py {version('icu4py')} WordBreaker (ICU {icu4py.icu_version})"
