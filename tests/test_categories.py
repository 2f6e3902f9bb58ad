"""Token categories: the `paper` scheme as METHODS.md spells it out, the `script` scheme by UAX #24."""
from __future__ import annotations

import unicodedata

import numpy as np
import pytest

from xlingbench.compute.categories import label_vocabulary, paper_category, script_category, unicode_versions
from xlingbench.inputs.vocab import build_vocabulary
from tests.tiny_models import byte_bpe_tokenizer, sentencepiece_tokenizer


@pytest.mark.parametrize(
    "token, label",
    [("▁a", "S"), ("▁the", "LATIN"), ("ー", "KATAKANA-HIRAGANA"), ("<pad>", "LATIN"), ("", "Unknown"),
     ("▁Привет", "CYRILLIC"), ("中文", "CJK"), ("▁한국", "HANGUL"), ("ひらがな", "HIRAGANA"), ("▁カタ", "KATAKANA"),
     ("▁", "S"), ("12", "N"), ("▁12", "N"), ("!?", "P"), ("a1", "LATIN"), ("1a", "N")],
)
def test_paper_labels_follow_the_published_rule(token: str, label: str) -> None:
    assert paper_category(token) == label


def test_paper_scheme_labels_special_tokens_too() -> None:
    labels = label_vocabulary(["<pad>", "▁the", "▁a"], "paper", special_ids=[0])
    assert labels.tolist() == ["LATIN", "LATIN", "S"]


@pytest.mark.parametrize(
    "token, label",
    [("▁the", "Latin"), ("▁a", "Latin"), ("Ġthe", "Latin"), ("##ing", "Latin"), ("▁Привет", "Cyrillic"),
     ("中文", "Han"), ("ひら", "Hiragana"), ("カタ", "Katakana"), ("▁한국", "Hangul"), ("مرحبا", "Arabic"),
     ("हिन्दी", "Devanagari"), ("ー", None), ("▁", None), ("12", None), ("!?", None), ("a\u0301", "Latin"),
     ("ab中", "Latin"), ("a中", "Latin"), ("中a", "Han")],
)
def test_script_labels_ignore_common_and_inherited(token: str, label: str | None) -> None:
    assert script_category(token) == label


def test_script_scheme_leaves_out_special_tokens() -> None:
    labels = label_vocabulary(["<s>", "▁the", "▁1"], "script", special_ids=[0])
    assert labels.tolist() == [None, "Latin", None]


def _script_labels(tokenizer) -> dict[str, str | None]:
    vocab = build_vocabulary(tokenizer, np.zeros((len(tokenizer), 2), np.float32), "labels")
    labels = label_vocabulary(vocab.tokens, "script", vocab.special_ids)
    raw = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    return {token: label for token, label in zip(raw, labels)}


def test_sentencepiece_g_with_dot_is_a_maltese_letter_not_a_marker() -> None:
    # XLM-R's token 244871 is 'Ġ': SentencePiece marks words with ▁ only, so Ġ is text (Latin).
    labels = _script_labels(sentencepiece_tokenizer(["\u0120", "\u2581\u0120", "\u0120中", "\u2581中"]))
    assert [labels[t] for t in ("\u0120", "\u2581\u0120", "\u0120中", "\u2581中")] == ["Latin", "Latin", "Latin", "Han"]


def test_byte_level_space_marker_is_not_a_letter_but_an_encoded_g_with_dot_is() -> None:
    from tokenizers import pre_tokenizers

    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    maltese, maltese_han = (byte_level.pre_tokenize_str(text)[0][0] for text in ("\u0120", "\u0120中"))
    space_han = byte_level.pre_tokenize_str(" 中")[0][0]  # the space byte is stored as 'Ġ'
    labels = _script_labels(byte_bpe_tokenizer(["\u0120", maltese, maltese_han, space_han]))
    assert space_han.startswith("\u0120") and maltese != "\u0120"
    assert [labels[t] for t in ("\u0120", maltese, maltese_han, space_han)] == [None, "Latin", "Latin", "Han"]


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="scheme 'unicode'"):

        label_vocabulary(["a"], "unicode")


def test_unicode_versions_are_recorded() -> None:
    versions = unicode_versions()
    assert versions["unidata_version"] == unicodedata.unidata_version
    assert versions["fonttools_scripts_version"].count(".") == 2
