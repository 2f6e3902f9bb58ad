"""Token surface strings in one comparable form, aligned with the input embedding matrix.

Why: the three tokenizer families store word boundaries differently (SentencePiece ``▁word``,
byte-level BPE ``Ġword`` over a byte-to-character map, WordPiece ``word`` / ``##piece``). The
tasks compare strings across models and label them by script, so every vocabulary is brought
to the SentencePiece convention: text as real Unicode, a word start written as ``▁``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import numpy as np

from xlingbench.compute.surface import WORD_START
from xlingbench.core.errors import UserError

Style = Literal["sentencepiece", "byte_bpe", "wordpiece"]


@dataclass
class Vocabulary:
    """A model's vocabulary: normalised strings and embedding rows, by token id."""

    model_id: str
    tokens: list[str]
    embeddings: np.ndarray
    special_ids: frozenset[int]
    style: Style
    _unit: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def unit_embeddings(self) -> np.ndarray:
        """Rows L2-normalised (float32), computed once: cosine similarity is then a dot product."""
        if self._unit is None:
            norms = np.linalg.norm(self.embeddings, axis=1, keepdims=True)
            self._unit = (self.embeddings / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
        return self._unit


def build_vocabulary(tokenizer: Any, matrix: np.ndarray, model_id: str) -> Vocabulary:
    """Align ``tokenizer`` with ``matrix``: drop padding rows, normalise every token string."""
    n_tokens = len(tokenizer)
    check_rows(n_tokens, matrix, model_id)
    raw = tokenizer.convert_ids_to_tokens(list(range(n_tokens)))
    raw = [t if t is not None else "" for t in raw]
    style = tokenizer_style(tokenizer)
    special = frozenset(int(i) for i in tokenizer.all_special_ids if 0 <= int(i) < n_tokens)
    tokens = [t if i in special else normalise_token(t, style) for i, t in enumerate(raw)]
    embeddings = np.ascontiguousarray(matrix[:n_tokens], dtype=np.float32)
    return Vocabulary(model_id, tokens, embeddings, special, style)


def check_rows(n_tokens: int, matrix: np.ndarray, model_id: str) -> None:
    """A UserError unless ``matrix`` is 2-D with a row for each of the tokenizer's ``n_tokens`` tokens.

    More rows than tokens is normal (vocabularies padded to a multiple of 64 or 128: the extra
    rows are no token's and are dropped); fewer means the tokenizer is not this checkpoint's.
    Checked before the matrix is cached, so a mismatched pair never leaves an entry behind.
    """
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        raise UserError(f"{model_id}: the input embedding matrix has shape {matrix.shape}.",
                        "Check that the checkpoint holds a 2-D input embedding.")
    if n_tokens == 0:
        raise UserError(f"{model_id}: the tokenizer has no token at all (a zero-size vocabulary).",
                        "Load the tokenizer that belongs to this checkpoint (same id and revision).")
    if n_tokens > matrix.shape[0]:
        raise UserError(
            f"{model_id}: the tokenizer has {n_tokens} tokens but the embedding matrix has only "
            f"{matrix.shape[0]} rows.",
            "Load the tokenizer that belongs to this checkpoint (same id and revision).",
        )


def tokenizer_style(tokenizer: Any) -> Style:
    """Which word-boundary convention ``tokenizer`` stores its vocabulary in."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:  # slow tokenizers here are SentencePiece-based
        return "sentencepiece"
    spec = json.loads(backend.to_str())
    if spec.get("model", {}).get("type") == "WordPiece":
        return "wordpiece"
    if "ByteLevel" in json.dumps([spec.get("pre_tokenizer"), spec.get("decoder")]):
        return "byte_bpe"
    return "sentencepiece"


def normalise_token(token: str, style: Style) -> str:
    """One stored token in the common form (real text, ``▁`` for a word start)."""
    if style == "wordpiece":
        return token[2:] if token.startswith("##") else WORD_START + token
    if style == "byte_bpe":
        data = bytes(_byte_decoder().get(ch, ord(" ")) for ch in token)
        return data.decode("utf-8", errors="replace").replace(" ", WORD_START)
    return token


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's bytes_to_unicode map: printable character -> byte."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1)
    )
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars)}
