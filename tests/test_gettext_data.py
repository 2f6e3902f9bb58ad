"""Tasks 4-5's frozen offline catalogs: pinned to the tasks' version, read without their sources,
and the freezing script's reading of a wheel checked on a wheel built here with planted messages."""
from __future__ import annotations

import lzma
import hashlib
import importlib.util
import re
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from xlingbench.core.errors import UserError
from xlingbench.inputs import gettext_data as g
from xlingbench.inputs.parallel_data import load_parallel

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
#: tasks 4-5's version -> the sha256 of the frozen catalogs they read by default. New data
#: without a new task version fails here: the same version must mean the same data.
FROZEN_CORPUS_BY_TASK_VERSION = {"5": "d23e82d2c8fc6af1a86ef2ef4da4db9e6bf32c4ba8b758029dded12f47d35998",
                                 "6": "d23e82d2c8fc6af1a86ef2ef4da4db9e6bf32c4ba8b758029dded12f47d35998"}


def test_frozen_corpus_goes_with_the_task_versions() -> None:
    from xlingbench.tasks.calign import TASK as CALIGN
    from xlingbench.tasks.colap import TASK as COLAP

    text = lzma.decompress(g.CORPUS_FILE.read_bytes())
    assert CALIGN.metadata.version == COLAP.metadata.version
    assert hashlib.sha256(text).hexdigest() == FROZEN_CORPUS_BY_TASK_VERSION[CALIGN.metadata.version] == g.CORPUS_SHA256


def test_every_source_is_pinned_and_permissively_licensed() -> None:
    lines = lzma.decompress(g.CORPUS_FILE.read_bytes()).decode("utf-8").splitlines()
    sources = [line.split("\t") for line in lines if line.startswith("# source\t")]
    assert len(sources) == int(g.frozen_corpus()[0]["sources"]) >= 10
    for _, _, dist, version, licence, _, wheel, digest in sources:
        assert licence in {"BSD-3-Clause", "BSD-2-Clause", "MIT", "Apache-2.0"}, dist
        assert version in wheel and digest.startswith("sha256:") and len(digest) == 71


def test_default_reaches_k_600_for_calign_en_de_and_a_three_language_colap() -> None:
    """K is at most a tenth of the word types: 6,000 English types let CALIGN en-de keep K = 600."""
    corpus = load_parallel("gettext", ["en", "de", "fr"])
    types = {lang: len({w for words in corpus.sentences[lang] for w in words}) for lang in corpus.languages}
    assert len(corpus) > 15_000 and min(types.values()) >= 6_000
    en_de = load_parallel("gettext", ["en", "de"])
    assert len({w for words in en_de.sentences["en"] for w in words}) >= 6_000


def test_default_gives_human_translations_aligned_in_several_languages() -> None:
    languages = ["en", "de", "fr", "ja", "zh"]
    corpus = load_parallel("gettext", languages)
    assert all(len(corpus.sentences[lang]) == len(corpus) for lang in languages)
    assert "gettext catalogs (frozen, 20 sources)" in corpus.word_tokenizer and "icu4py" in corpus.word_tokenizer
    english = [" ".join(words) for words in corpus.sentences["en"]]
    row = english.index("Thanks for using our site !")
    assert corpus.sentences["de"][row][:2] == ["Vielen", "Dank"] and corpus.sentences["fr"][row][0] == "Merci"
    texts = [text for lang in languages for text in corpus.texts[lang]]
    placeholder_or_tag = re.compile(r"%\([a-z_]+\)[sd]|%[sd]\b|\{[a-z_0-9]*\}|</?[a-z]+[ >]")
    assert len([t for t in texts if placeholder_or_tag.search(t)]) == 0
    han = [w for words in corpus.sentences["zh"] for w in words if any("\u4e00" <= c <= "\u9fff" for c in w)]
    assert han and max(map(len, han)) <= 6  # Chinese was segmented into words, not left as whole phrases


def test_unknown_language_lists_the_known_ones() -> None:
    with pytest.raises(UserError, match="no language 'xx'") as info:
        load_parallel("gettext", ["en", "xx"])
    assert "de" in info.value.fix and "zh" in info.value.fix


def test_default_reads_none_of_its_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("django", "babel", "babel.messages"):
        monkeypatch.setitem(sys.modules, name, None)
    assert len(load_parallel("gettext", ["en", "de"])) > 15_000


def test_a_damaged_file_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(g, "CORPUS_SHA256", "0" * 64)
    g.frozen_corpus.cache_clear()
    try:
        with pytest.raises(UserError, match="do not match their recorded sha256"):
            g.frozen_corpus()
    finally:
        g.frozen_corpus.cache_clear()


def test_accelerators_are_removed_but_not_inside_words_or_entities() -> None:
    assert g.clean_message("&Save &amp; close") == "Save & close"
    assert g.clean_message("R&D and Q&A; 保存(&S)") == "R&D and Q&A; 保存(S)"


# --- the freezing script, on a wheel built here ----------------------------------------------

PO = '''msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\\n"
"Plural-Forms: {plural}\\n"

msgid "Delete %(name)s"
msgstr "{delete}"

#, fuzzy
msgid "Guessed"
msgstr "{guessed}"

msgid "Untranslated"
msgstr ""

msgid "One file"
msgid_plural "%(n)s files"
msgstr[0] "{one}"
msgstr[1] "{many}"
'''


def freeze_script() -> ModuleType:
    pytest.importorskip("babel")
    sys.path.insert(0, str(SCRIPTS))
    try:
        spec = importlib.util.spec_from_file_location("freeze_gettext_corpus", SCRIPTS / "freeze_gettext_corpus.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SCRIPTS))
    return module


def planted_wheel(path: Path) -> Path:
    """German under ``de_DE`` (a regional name), Chinese under ``zh_Hans``; a ``.mo`` beside a ``.po`` is ignored."""
    de = PO.format(plural="nplurals=2; plural=(n != 1);", delete="%(name)s löschen", guessed="Geraten",
                   one="Eine Datei", many="%(n)s Dateien")
    zh = PO.format(plural="nplurals=1; plural=0;", delete="删除 %(name)s", guessed="猜", one="文件", many="文件")
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("pkg/locale/de_DE/LC_MESSAGES/django.po", de)
        wheel.writestr("pkg/locale/de_DE/LC_MESSAGES/django.mo", b"not a catalog")
        wheel.writestr("pkg/locale/zh_Hans/LC_MESSAGES/django.po", zh)
        wheel.writestr("pkg/locale/xx/LC_MESSAGES/django.po", zh)
    return path


def test_script_reads_translated_singular_messages_and_skips_fuzzy_and_empty(tmp_path: Path) -> None:
    script = freeze_script()
    messages = script.wheel_messages(planted_wheel(tmp_path / "pkg-1.0-py3-none-any.whl"))
    assert messages == {
        (None, "Delete %(name)s"): {"de": "löschen", "zh": "删除"},
        (None, "One file"): {"de": "Eine Datei", "zh": "文件"},
    }


def test_script_writes_the_same_bytes_twice_and_the_first_source_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = freeze_script()
    planted_wheel(tmp_path / "first-1.0-py3-none-any.whl")
    with zipfile.ZipFile(tmp_path / "second-2.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr("b/locale/de/LC_MESSAGES/messages.po", PO.format(
            plural="nplurals=2; plural=(n != 1);", delete="Entfernen", guessed="", one="Ein File", many="Files"))
    monkeypatch.setattr(script, "SOURCES", (("first", "1.0", "MIT", "x"), ("second", "2.0", "BSD-3-Clause", "y")))
    outputs = []
    for run in range(2):
        monkeypatch.setattr(script, "OUT", tmp_path / f"out{run}.tsv.xz")
        script.main(tmp_path)
        outputs.append((tmp_path / f"out{run}.tsv.xz").read_bytes())
    assert outputs[0] == outputs[1]
    rows = [line.split("\t") for line in lzma.decompress(outputs[0]).decode().splitlines() if not line.startswith("# ")]
    de = script.LANGUAGES.index("de") + 2
    assert [(row[0], row[1], row[de]) for row in rows] == [("0", "Delete", "löschen"), ("0", "One file", "Eine Datei")]
