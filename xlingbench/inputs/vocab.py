"""Token surface strings in one comparable form, aligned with the input embedding matrix.

Why: the three tokenizer families store word boundaries differently (SentencePiece ``▁word``,
byte-level BPE ``Ġword`` over a byte-to-character map, WordPiece ``word`` / ``##piece``). The
tasks compare strings across models and label them by script, so every vocabulary is brought
to the SentencePiece convention: text as real Unicode, a word start written as ``▁``.

Tokens that are not text are set apart (``Vocabulary.excluded_ids``; docs/tasks.md, "Token
categories"), so that no script or character class is claimed for them:

- byte tokens: the 256 byte-fallback pieces ``<0x00>``..``<0xFF>`` of a ``▁`` vocabulary with
  byte fallback (Gemma, Llama-2, Mistral), and byte-level BPE tokens whose bytes are not whole
  UTF-8 characters (``è®``: a fragment of a character, decoded only as U+FFFD);
- control tokens the tokenizer flags special (``added_tokens[].special``) without listing them
  in ``all_special_ids``: Gemma's 6,242 ``<unusedN>``, Llama-3's ``<|reserved_special_token_N|>``.

``special_ids`` stays what the tokenizer calls special (``all_special_ids``), as published.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import numpy as np

from xlingbench.compute.surface import WORD_START
from xlingbench.core.errors import UserError
from xlingbench.inputs.held_matrix import Matrix

Style = Literal["sentencepiece", "byte_bpe", "wordpiece"]
#: a byte-fallback piece of a ``▁`` vocabulary: one raw byte, written in hex
BYTE_FALLBACK = re.compile(r"<0x[0-9A-Fa-f]{2}>")


@dataclass
class Vocabulary:
    """A model's vocabulary: normalised strings and embedding rows, by token id.

    ``embeddings`` is a float32 array, or, for a model loaded in bfloat16 or float16, a torch tensor
    in that dtype (:mod:`xlingbench.inputs.held_matrix`): the tasks normalise its rows a chunk at a
    time in float32 (:mod:`xlingbench.compute.rows`), so the values they score are the same either way."""

    model_id: str
    tokens: list[str]
    embeddings: Matrix
    special_ids: frozenset[int]
    style: Style
    #: ids of tokens that are not text (byte tokens, control tokens beyond ``special_ids``): unlabelled
    excluded_ids: frozenset[int] = frozenset()
    _unit: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.tokens)

    def float32_rows(self, ids: np.ndarray | None = None) -> np.ndarray:
        """Rows ``ids`` (default all) of ``embeddings`` as a float32 numpy array, whatever dtype they
        are held in: how code outside the tasks (a plugin task) reads rows with numpy, since a
        bfloat16 model's ``embeddings`` is a torch tensor numpy cannot read."""
        from xlingbench.compute.rows import float32_rows

        return float32_rows(self.embeddings, np.arange(len(self.embeddings)) if ids is None else np.asarray(ids, dtype=np.int64))

    @property
    def unit_embeddings(self) -> np.ndarray:
        """Rows L2-normalised (float32), computed once: cosine similarity is then a dot product.

        Normalised a chunk of rows at a time straight into this one float32 array
        (:func:`xlingbench.compute.rows.unit_rows`), from ``embeddings`` in any dtype (a torch
        bfloat16 tensor too): the whole-matrix norm and division made two more float32 copies
        (4x a bfloat16 matrix beside the one kept). Bit-identical to the whole-matrix division."""
        if self._unit is None:
            from xlingbench.compute.rows import unit_rows

            self._unit = unit_rows(self.embeddings, np.arange(len(self.embeddings), dtype=np.int64))
        return self._unit


def build_vocabulary(tokenizer: Any, matrix: Matrix, model_id: str) -> Vocabulary:
    """Align ``tokenizer`` with ``matrix``: drop padding rows, normalise every token string."""
    n_tokens = len(tokenizer)
    check_rows(n_tokens, matrix, model_id)
    raw = tokenizer.convert_ids_to_tokens(list(range(n_tokens)))
    raw = [t if t is not None else "" for t in raw]
    style = tokenizer_style(tokenizer)
    special = frozenset(int(i) for i in tokenizer.all_special_ids if 0 <= int(i) < n_tokens)
    tokens = [t if i in special else normalise_token(t, style) for i, t in enumerate(raw)]
    excluded = (byte_token_ids(raw, style, _byte_fallback(tokenizer)) | control_token_ids(tokenizer, n_tokens)) - special
    embeddings = np.ascontiguousarray(matrix[:n_tokens], dtype=np.float32) if isinstance(matrix, np.ndarray) else matrix[:n_tokens]
    return Vocabulary(model_id, tokens, embeddings, special, style, frozenset(excluded))


def byte_token_ids(raw: list[str], style: Style, byte_fallback: bool) -> set[int]:
    """Ids of stored tokens that are bytes, not text: byte-fallback pieces (when the model has
    byte fallback) and byte-level tokens whose bytes are not whole UTF-8 characters."""
    if style == "byte_bpe":
        return {i for i, token in enumerate(raw) if not _whole_characters(token)}
    if style == "sentencepiece" and byte_fallback:
        return {i for i, token in enumerate(raw) if BYTE_FALLBACK.fullmatch(token)}
    return set()


def control_token_ids(tokenizer: Any, n_tokens: int) -> set[int]:
    """Ids the tokenizer flags special among its added tokens (``added_tokens[].special``)."""
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    return {int(i) for i, token in added.items() if getattr(token, "special", False) and 0 <= int(i) < n_tokens}


def _whole_characters(token: str) -> bool:
    """Whether a byte-level token's bytes decode as UTF-8 (whole characters only)."""
    table = _byte_decoder()
    try:
        bytes(table.get(ch, ord(" ")) for ch in token).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _byte_fallback(tokenizer: Any) -> bool:
    """Whether the tokenizer's model spells unknown characters as ``<0xNN>`` byte pieces."""
    model = getattr(getattr(tokenizer, "backend_tokenizer", None), "model", None)
    return bool(getattr(model, "byte_fallback", False))


def check_rows(n_tokens: int, matrix: Matrix, model_id: str) -> None:
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
    if type(backend.model).__name__ == "WordPiece":
        return "wordpiece"
    if any("ByteLevel" in _component_json(part) for part in (backend.pre_tokenizer, backend.decoder)):
        return "byte_bpe"
    return "sentencepiece"


def _component_json(component: Any) -> str:
    """One tokenizer component (pre-tokenizer, decoder) as its JSON, without serialising the
    whole tokenizer (a 262k vocabulary is a 17 MB ``to_str()``)."""
    if component is None:
        return ""
    state = component.__getstate__()
    return state.decode("utf-8") if isinstance(state, bytes) else json.dumps(state)


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
