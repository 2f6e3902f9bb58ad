"""Dictionaries: MUSE files, lexical tables, CLDR pairs, fingerprints, and errors that name the file."""
from __future__ import annotations

from pathlib import Path

import pytest

from xlingbench.core.errors import UserError
from xlingbench.inputs import dictionaries as d

SHARED_MUSE = Path(__file__).resolve().parents[2] / "shared" / "data" / "muse"


def test_read_muse_takes_tab_or_space_and_skips_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "en-de.txt"
    path.write_text("water\tWasser\nwater Gewässer\n\nthree fields here\nhouse  Haus\n", encoding="utf-8")
    assert d.read_muse(path) == [("water", "Wasser"), ("water", "Gewässer"), ("house", "Haus")]
    assert d.group(d.read_muse(path)) == {"water": ["Wasser", "Gewässer"], "house": ["Haus"]}


@pytest.mark.parametrize("content", ["", "one\nthree words here\n", b"\xff\xfe\x00bad"])
def test_bad_dictionary_file_names_the_file(tmp_path: Path, content: str | bytes) -> None:
    path = tmp_path / "en-xx.txt"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(UserError, match="en-xx.txt"):
        d.read_muse(path)


def test_missing_dictionary_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="en-zz.txt"):
        d.load_dictionaries(str(tmp_path / "en-zz.txt"), tmp_path)


def test_pair_is_read_from_the_file_name(tmp_path: Path) -> None:
    (tmp_path / "en-de.tsv").write_text("dog\tHund\n", encoding="utf-8")
    (tmp_path / "en-fr.txt").write_text("dog chien\n", encoding="utf-8")
    (tmp_path / "de-en.tsv").write_text("Hund\tdog\n", encoding="utf-8")  # not English-first: ignored in a directory
    found = d.load_dictionaries(str(tmp_path), tmp_path)
    assert [(x.pair, x.entries) for x in found] == [("en-de", {"dog": ["Hund"]}), ("en-fr", {"dog": ["chien"]})]
    assert [x.pair for x in d.load_dictionaries(str(tmp_path), tmp_path, targets=["fr"])] == ["en-fr"]
    with pytest.raises(UserError, match="de-en.tsv"):
        d.load_dictionaries(str(tmp_path / "de-en.tsv"), tmp_path)


def test_fingerprint_depends_on_the_pairs_only() -> None:
    one = d.Dictionary("en-de", {"a": ["b", "c"], "d": ["e"]}, "x")
    same = d.Dictionary("en-de", {"d": ["e"], "a": ["c", "b"]}, "y")
    other = d.Dictionary("en-de", {"a": ["b"], "d": ["e"]}, "x")
    assert one.fingerprint == same.fingerprint != other.fingerprint
    assert one.record() == {"source": "x", "sha256": one.fingerprint, "words": 2, "pairs": 3}


def test_lexical_table(tmp_path: Path) -> None:
    path = tmp_path / "lex.e2f"
    path.write_text("house -> Haus: Probability = 0.25\nhouse -> Gebäude: Probability = 0.5\n"
                    "garbage line\ndog -> Hund: Probability = 1\n", encoding="utf-8")
    assert d.read_lexical_table(path) == {"house": [("Gebäude", 0.5), ("Haus", 0.25)], "dog": [("Hund", 1.0)]}
    path.write_text("no table here\n", encoding="utf-8")
    with pytest.raises(UserError, match="lex.e2f"):
        d.read_lexical_table(path)


def test_cldr_pairs_are_real_single_word_translations() -> None:
    de, ja, hi = d.cldr_dictionary("de"), d.cldr_dictionary("ja"), d.cldr_dictionary("hi")
    assert "Deutsch" in de.entries["German"]
    assert "Januar" in de.entries["January"] and "Montag" in de.entries["Monday"]
    assert "月曜日" in ja.entries["Monday"]
    assert "हिन्दी" in hi.entries["Hindi"]  # combining vowel signs are part of a word
    assert "United" not in de.entries and all(" " not in t for ts in de.entries.values() for t in ts)
    assert de.source.startswith("cldr ")
    with pytest.raises(UserError, match="'xx-nonsense'"):
        d.cldr_dictionary("xx-nonsense")


def test_muse_download_offline_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise d.urllib.error.URLError("no network")

    monkeypatch.setattr(d.urllib.request, "urlopen", refuse)
    with pytest.raises(UserError, match="en-de.*dictionary=cldr"):
        d.load_dictionaries("muse", tmp_path, targets=["de"])
    cached = tmp_path / "muse" / "en-de.txt"
    cached.parent.mkdir()
    cached.write_text("dog Hund\n", encoding="utf-8")
    assert d.load_dictionaries("muse", tmp_path, targets=["de"])[0].entries == {"dog": ["Hund"]}


@pytest.mark.skipif(not SHARED_MUSE.is_dir(), reason="../shared/data/muse is absent")
def test_reads_a_real_muse_file() -> None:
    found = d.load_dictionaries(str(SHARED_MUSE / "en-de.tsv"), SHARED_MUSE)
    assert found[0].pair == "en-de" and "wasser" in found[0].entries["water"]  # MUSE is lowercased
