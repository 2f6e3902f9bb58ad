"""Parallel data loaders: local files, TSV, the Hub path's errors (the frozen gettext default: test_gettext_data.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from xlingbench.core.errors import UserError
from xlingbench.inputs.gettext_data import clean_message
from xlingbench.inputs.parallel_data import corpus_summary, fingerprint, load_parallel

PUD = Path(__file__).resolve().parents[2] / "shared" / "data" / "pud"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_directory_of_tok_files_is_split_on_whitespace(tmp_path: Path) -> None:
    write(tmp_path / "c.en.tok", "the cat sat .\nhello , world\n")
    write(tmp_path / "c.de.tok", "die Katze saß .\nhallo , Welt\n")
    corpus = load_parallel(str(tmp_path), ["en", "de"])
    assert corpus.sentences["en"] == [["the", "cat", "sat", "."], ["hello", ",", "world"]]
    assert corpus.sentences["de"][1] == ["hallo", ",", "Welt"]
    assert corpus.word_tokenizer == "whitespace (.tok)"
    assert corpus.dropped_long == 0 and len(corpus) == 2 and corpus.source == str(tmp_path)


def test_raw_text_is_word_tokenised_with_icu_including_chinese_and_thai(tmp_path: Path) -> None:
    write(tmp_path / "en.txt", "Hello, world!\n")
    write(tmp_path / "zh.txt", "我们喜欢自然语言。\n")
    write(tmp_path / "th.txt", "ภาษาไทย\n")
    corpus = load_parallel(str(tmp_path), ["en", "zh", "th"])
    assert corpus.sentences["en"] == [["Hello", ",", "world", "!"]]
    assert corpus.sentences["zh"] == [["我们", "喜欢", "自然", "语言", "。"]]
    assert corpus.sentences["th"] == [["ภาษา", "ไทย"]]
    assert corpus.word_tokenizer.startswith("icu4py ")


def test_prefix_selects_files_and_tok_is_preferred_over_txt(tmp_path: Path) -> None:
    write(tmp_path / "a.en.tok", "x y\n")
    write(tmp_path / "a.de.txt", "roh, Text\n")
    write(tmp_path / "b.en.tok", "other file\n")
    corpus = load_parallel(str(tmp_path / "a"), ["en", "de"])
    assert corpus.sentences == {"en": [["x", "y"]], "de": [["roh", ",", "Text"]]}
    assert "en: whitespace (.tok)" in corpus.word_tokenizer and "de: icu4py" in corpus.word_tokenizer
    with pytest.raises(UserError, match="Several files for language 'en'"):
        load_parallel(str(tmp_path), ["en", "de"])


def test_tsv_with_header_of_languages(tmp_path: Path) -> None:
    write(tmp_path / "p.tsv", "en\tfr\tde\nThe cat.\tLe chat.\tDie Katze.\nYes\tOui\tJa\n")
    corpus = load_parallel(str(tmp_path / "p.tsv"), ["de", "en"])
    assert corpus.languages == ["de", "en"]
    assert corpus.sentences["de"] == [["Die", "Katze", "."], ["Ja"]]
    assert corpus.sentences["en"] == [["The", "cat", "."], ["Yes"]]
    tok = load_parallel(str(write(tmp_path / "p.tok.tsv", "en\tde\na,b c\td e\n")), ["en", "de"])
    assert tok.sentences["en"] == [["a,b", "c"]] and tok.word_tokenizer == "whitespace (.tok)"


def test_tsv_errors_name_the_line_and_the_column(tmp_path: Path) -> None:
    write(tmp_path / "bad.tsv", "en\tde\nA\tB\nonly one field\n")
    with pytest.raises(UserError, match="line 3 has 1 fields"):
        load_parallel(str(tmp_path / "bad.tsv"), ["en", "de"])
    with pytest.raises(UserError, match="'fr' is not a column"):
        load_parallel(str(tmp_path / "bad.tsv"), ["en", "fr"])


def test_long_lines_are_dropped_in_every_language_and_counted(tmp_path: Path) -> None:
    write(tmp_path / "c.en.tok", "a b\n" + "w " * 5 + "\nc\n")
    write(tmp_path / "c.de.tok", "x y\nshort\n" + "v " * 4 + "\n")
    corpus = load_parallel(str(tmp_path), ["en", "de"], max_words=4)
    assert corpus.dropped_long == 2  # line 2 (en has 5) and line 3 (de has exactly 4: the limit is exclusive)
    assert corpus.sentences == {"en": [["a", "b"]], "de": [["x", "y"]]}


def test_mismatched_line_counts_name_both_files(tmp_path: Path) -> None:
    write(tmp_path / "c.en.tok", "a\nb\nc\n")
    write(tmp_path / "c.de.tok", "a\nb\n")
    with pytest.raises(UserError, match=r"not line-aligned.*en: 3 lines in .*c\.en\.tok.*de: 2 lines in .*c\.de\.tok"):
        load_parallel(str(tmp_path), ["en", "de"])


def test_empty_file_is_named(tmp_path: Path) -> None:
    write(tmp_path / "c.en.tok", "a\n")
    write(tmp_path / "c.de.tok", "\n")
    with pytest.raises(UserError, match=r"c\.de\.tok is empty"):
        load_parallel(str(tmp_path), ["en", "de"])


def test_missing_language_and_too_few_languages(tmp_path: Path) -> None:
    write(tmp_path / "c.en.tok", "a\n")
    write(tmp_path / "c.de.tok", "a\n")
    with pytest.raises(UserError, match="No file for language 'fr'"):
        load_parallel(str(tmp_path), ["en", "fr"])
    with pytest.raises(UserError, match="at least 2 languages"):
        load_parallel(str(tmp_path), ["en", "en"])
    with pytest.raises(UserError, match="does not exist"):
        load_parallel(str(tmp_path / "nowhere" / "x"), ["en", "de"])


def test_fingerprint_follows_the_content_used(tmp_path: Path) -> None:
    write(tmp_path / "c.en.tok", "a b\nc\n")
    write(tmp_path / "c.de.tok", "x y\nz\n")
    first = load_parallel(str(tmp_path), ["en", "de"]).fingerprint
    assert load_parallel(str(tmp_path), ["en", "de"]).fingerprint == first
    write(tmp_path / "c.de.tok", "x y\nZ\n")
    assert load_parallel(str(tmp_path), ["en", "de"]).fingerprint != first
    # word boundaries count, not just the characters
    assert fingerprint({"en": [["ab"]]}) != fingerprint({"en": [["a", "b"]]})


def test_clean_message_strips_placeholders_tags_and_entities() -> None:
    assert clean_message("Delete %(name)s and %s (%d%%) items?") == "Delete and ( ) items?"
    assert clean_message("Page {0} of {num}: <a href='x'>next</a> &amp; more") == "Page of : next & more"


def test_hub_spec_needs_a_revision_and_fails_clearly_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UserError, match="no pinned revision"):
        load_parallel("hf:openlanguagedata/flores_plus", ["en", "de"])
    import datasets

    def offline(*args: object, **kwargs: object) -> None:
        raise ConnectionError("Couldn't reach the Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(UserError, match=r"config 'eng_Latn' for language 'en'.*Couldn't reach") as info:
        load_parallel("hf:openlanguagedata/flores_plus@abc123", ["en", "de"])
    assert "gettext" in info.value.fix


@pytest.mark.integration
@pytest.mark.skipif(not PUD.is_dir(), reason="../shared/data/pud is absent")
def test_pud_prefix_loads_gold_tokenisation() -> None:
    corpus = load_parallel(str(PUD / "pud"), ["en", "de", "ja"])
    summary = corpus_summary(corpus)
    assert summary["lines"] == 1000 and corpus.dropped_long == 0
    assert corpus.word_tokenizer == "gold words (.tok) located in the raw text (.txt), 0 not located"
    assert summary["words/en"] == len((PUD / "pud.en.tok").read_text(encoding="utf-8").split())
    assert corpus.texts["ja"][0] == (PUD / "pud.ja.txt").read_text(encoding="utf-8-sig").split("\n")[0]  # read as written


def test_texts_and_word_spans_are_kept_for_raw_and_pretokenised_lines(tmp_path: Path) -> None:
    write(tmp_path / "c.zh.txt", "我们喜欢 自然语言。\n😀好 🙂\n")  # faces lie beyond the BMP (two UTF-16 units each)
    write(tmp_path / "c.en.tok", "we  like\tnatural language .\nsmile ok\n")
    corpus = load_parallel(str(tmp_path / "c"), ["zh", "en"])
    assert corpus.texts == {"zh": ["我们喜欢 自然语言。", "😀好 🙂"], "en": ["we like natural language .", "smile ok"]}
    for lang in corpus.languages:
        for text, words, spans in zip(corpus.texts[lang], corpus.sentences[lang], corpus.spans[lang]):
            assert [text[a:b] for a, b in spans] == words
    assert corpus.sentences["zh"][0] == ["我们", "喜欢", "自然", "语言", "。"] and corpus.spans["zh"][0][2] == (5, 7)
    assert corpus.spans["en"][0] == [(0, 2), (3, 7), (8, 15), (16, 24), (25, 26)]


@pytest.mark.parametrize("mark", ["\ufeff", "\u200e", "\ufeff\u200b"])
@pytest.mark.parametrize("suffix", [".tok", ".txt", ".tsv"])
def test_format_characters_at_line_starts_are_removed(tmp_path: Path, mark: str, suffix: str) -> None:
    def load(folder: Path, prefix: str) -> Any:
        folder.mkdir()
        if suffix == ".tsv":
            write(folder / "p.tsv", f"{prefix}en\tde\n{prefix}The cat .\t{prefix}Die Katze .\n")
            return load_parallel(str(folder / "p.tsv"), ["en", "de"])
        write(folder / f"c.en{suffix}", f"{prefix}The cat .\n{prefix}Yes\n")
        write(folder / f"c.de{suffix}", "Die Katze .\nJa\n")
        return load_parallel(str(folder / "c"), ["en", "de"])

    marked, plain = load(tmp_path / "marked", mark), load(tmp_path / "plain", "")
    assert marked.sentences == plain.sentences and marked.texts == plain.texts
    assert marked.sentences["en"][0] == ["The", "cat", "."] and marked.fingerprint == plain.fingerprint


def test_dropped_lines_stay_in_the_language_lines_and_head_cuts_consistently(tmp_path: Path) -> None:
    write(tmp_path / "c.en.tok", "a b\n" + "w " * 5 + "\nc\nd e\n")
    write(tmp_path / "c.de.tok", "x y\nshort\nz\nu v\n")
    corpus = load_parallel(str(tmp_path), ["en", "de"], max_words=4)
    assert corpus.kept == [0, 2, 3] and len(corpus.lines["en"]) == 4
    assert corpus.lines["en"].words[1] == ["w"] * 5 and corpus.sentences["en"] == [["a", "b"], ["c"], ["d", "e"]]
    head = corpus.head(2)
    assert head.sentences == {"en": [["a", "b"], ["c"]], "de": [["x", "y"], ["z"]]}
    assert head.kept == [0, 2] and len(head.lines["de"]) == 3 and head.dropped_long == 1
    assert head.fingerprint != corpus.fingerprint
    direct = load_parallel(str(write(tmp_path / "h.tok.tsv", "en\tde\na b\tx y\nc\tz\n")), ["en", "de"])
    assert head.fingerprint == direct.fingerprint  # a cut is fingerprinted like the same data read whole
