"""Token categories: which writing system (or character class) a vocabulary entry belongs to.

Tasks 1 and 2 need a label per token. Two schemes (docs/tasks.md, "Token categories"):

- ``paper`` reproduces the published code (hyperpolyglot ``scripts/vocab_categories.py``): a
  letter's category is the first word of its Unicode character name (``LATIN``, ``CJK``,
  ``HANGUL``; U+30FC gives ``KATAKANA-HIRAGANA``), any other character the first letter of its
  general category (``S``, ``N``, ``P``, ``M``, ``C``, ``Z``). ``▁`` is a character like any other
  (``So`` -> ``S``), so ``'▁a'`` is ``S`` and ``'▁the'`` is ``LATIN``. The token's category is the
  most common character category, ties going to the one seen first. Special tokens keep their
  label (``'<pad>'``: ``S, LATIN, LATIN, LATIN, S`` -> ``LATIN``); the empty string is
  ``Unknown``, as published.
- ``script`` is the Unicode Script property (UAX #24, via ``fontTools.unicodedata.script``) of
  the token's characters, ignoring Common, Inherited and Unknown (unassigned). Most common script
  wins, ties to the one seen first. A token with no script-bearing character, and every special
  token, gets no label (``None``).

  Tokens come normalised (:mod:`xlingbench.inputs.vocab`): each vocabulary's own word marker —
  SentencePiece ``▁``, byte-level BPE ``Ġ`` (a space byte), WordPiece ``##`` — is already
  rewritten to the common form, whose only marker is ``▁`` (Common, so ignored). So nothing is
  stripped here: whatever else is left is text. In particular ``Ġ`` (U+0120) is then the Maltese
  letter, Latin — in a SentencePiece vocabulary (XLM-R's token 244871) and in a byte-level one
  alike (there its UTF-8 bytes decode to it) — and is never removed as if it were a space.

Tokens that are not text -- byte tokens (``<0x41>`` byte-fallback pieces, byte-level fragments of
a character) and control tokens the tokenizer flags special beyond its ``all_special_ids``
(``<unusedN>``) -- are left out of **both** schemes (``excluded_ids``, found by
:mod:`xlingbench.inputs.vocab`): a byte belongs to no writing system, and scoring it as text made
55% of a byte-level model's ``paper`` S class byte fragments. The published vocabularies (XLM-R,
mT5) have no byte tokens, so the paper scheme's numbers on them are unchanged.

``paper`` depends on Python's own Unicode database (``unicodedata.unidata_version``), ``script``
on fontTools' copy of ``Scripts.txt``; :func:`unicode_versions` reports both for the run record.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np


SCHEMES = ("paper", "script")
#: Script values that say nothing about the writing system (UAX #24: Zyyy, Zinh; Zzzz unassigned)
_NO_SCRIPT = frozenset({"Zyyy", "Zinh", "Zzzz"})


def check_scheme(scheme: str) -> str:
    """``scheme`` if it is a known labelling scheme, else a ValueError listing the known ones."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown labelling scheme {scheme!r}; use one of: {', '.join(SCHEMES)}")
    return scheme


@lru_cache(maxsize=None)
def paper_char_category(ch: str) -> str:
    """The published per-character class: first word of a letter's name, else general class."""
    general = unicodedata.category(ch)
    if general.startswith("L"):
        return unicodedata.name(ch, general).split(" ")[0]
    return general[0]


def paper_category(token: str) -> str:
    """The ``paper`` label of one token string (markers and all)."""
    return _most_common(paper_char_category(ch) for ch in token) or "Unknown"


@lru_cache(maxsize=None)
def _char_script(ch: str) -> str:
    from fontTools import unicodedata as ucd

    return ucd.script(ch)


@lru_cache(maxsize=None)
def _script_name(code: str) -> str:
    from fontTools import unicodedata as ucd

    return ucd.script_name(code)


def script_category(token: str) -> str | None:
    """The ``script`` label of one normalised token (e.g. ``Latin``, ``Han``), None when it has none."""
    code = _most_common(s for s in map(_char_script, token) if s not in _NO_SCRIPT)
    return _script_name(code) if code else None


def _most_common(items: Iterable[str]) -> str | None:
    """Most frequent item, ties to the one seen first (Counter keeps insertion order)."""
    counts = Counter(items)
    return counts.most_common(1)[0][0] if counts else None


def label_vocabulary(tokens: Sequence[str], scheme: str, special_ids: Iterable[int] = (),
                     excluded_ids: Iterable[int] = ()) -> np.ndarray:
    """A label per token id (object array; None = unlabelled, left out of tasks 1 and 2).

    ``excluded_ids`` (tokens that are not text) are unlabelled in both schemes; ``special_ids``
    only in ``script`` (``paper`` labels special tokens, as published)."""
    check_scheme(scheme)
    excluded = frozenset(excluded_ids)
    if scheme == "paper":  # special tokens are labelled like any other, as published
        return np.array([None if i in excluded else paper_category(t) for i, t in enumerate(tokens)], dtype=object)
    skipped = excluded | frozenset(special_ids)
    return np.array(
        [None if i in skipped else script_category(t) for i, t in enumerate(tokens)], dtype=object
    )


def unicode_versions() -> dict[str, str]:
    """Versions of the Unicode data behind both schemes, for the run record."""
    import fontTools
    from fontTools.unicodedata import Scripts

    header = Path(Scripts.__file__).read_text(encoding="utf-8")[:2000]
    found = re.search(r"Scripts-(\d+\.\d+\.\d+)\.txt", header)
    return {
        "unidata_version": unicodedata.unidata_version,
        "fonttools_version": fontTools.version,
        "fonttools_scripts_version": found.group(1) if found else "unknown",
    }
