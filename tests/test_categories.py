"""Token categories: the `paper` scheme as METHODS.md spells it out, the `script` scheme by UAX #24."""
from __future__ import annotations

import unicodedata

import pytest

from xlingbench.core.errors import UserError
from xlingbench.compute.categories import label_vocabulary, paper_category, script_category, unicode_versions


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


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="scheme 'unicode'"):
        label_vocabulary(["a"], "unicode")


def test_unicode_versions_are_recorded() -> None:
    versions = unicode_versions()
    assert versions["unidata_version"] == unicodedata.unidata_version
    assert versions["fonttools_scripts_version"].count(".") == 2
