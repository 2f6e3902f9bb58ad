"""Dictionaries: MUSE files, lexical tables, CLDR pairs, case folding, fingerprints,
and errors that name the file and the fix."""
from __future__ import annotations

import gzip
import re
import sys
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


def test_lexical_table_with_counts_and_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "lex.e2f"
    path.write_text("\ufeffhouse -> Haus: Probability = 0.25, Count = 3\n"
                    "house -> Gebäude: Probability = 0.5\n"  # the form without a count still reads
                    "dog -> Hund: Probability = 1, Count = 12\n"
                    "dog -> Köter: Probability = 0.1, Count = many words\n", encoding="utf-8")  # not a line of the form
    assert d.read_lexical_table(path) == {"house": [("Gebäude", 0.5), ("Haus", 0.25)], "dog": [("Hund", 1.0)]}


def test_muse_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "en-de.txt"
    path.write_bytes("water Wasser\n".encode("utf-8-sig"))
    assert d.read_muse(path) == [("water", "Wasser")]


def test_group_without_case_merges_spellings_in_first_seen_order() -> None:
    pairs = [("Water", "Wasser"), ("water", "Gewässer"), ("water", "wasser"), ("House", "Haus"), ("WATER", "GEWÄSSER")]
    assert d.group(pairs) == {"Water": ["Wasser"], "water": ["Gewässer", "wasser"], "House": ["Haus"], "WATER": ["GEWÄSSER"]}
    assert d.group(pairs, match_case=False) == {"water": ["wasser", "gewässer"], "house": ["haus"]}


def test_lexical_table_without_case_keeps_the_best_probability_of_a_merged_pair(tmp_path: Path) -> None:
    path = tmp_path / "lex.e2f"
    path.write_text("House -> Haus: Probability = 0.7\nhouse -> haus: Probability = 0.4\n"
                    "house -> Heim: Probability = 0.5\nhouse -> Gebäude: Probability = 0.1\n", encoding="utf-8")
    assert d.read_lexical_table(path, match_case=False) == {"house": [("haus", 0.7), ("heim", 0.5), ("gebäude", 0.1)]}
    assert d.read_lexical_table(path)["House"] == [("Haus", 0.7)]


def _bad_file(tmp_path: Path, kind: str) -> Path:
    """A dictionary path that is wrong in the way ``kind`` says."""
    path = tmp_path / "en-xx.txt"
    if kind == "directory":
        path.mkdir()
    elif kind != "missing":
        path.write_bytes({
            "empty": b" \n\n",
            "binary": gzip.compress(b"water Wasser\n" * 50),
            "utf-16": b"\xff\xfe" + "water Wasser\n".encode("utf-16-le"),
            "latin-1": "water Wasser\nwater Gew\xe4sser\n".encode("latin-1"),
            "one column": b"water\nhouse\n",
        }[kind])
    return path


@pytest.mark.parametrize("reader", [d.read_muse, d.read_lexical_table])
@pytest.mark.parametrize(("kind", "problem", "fix"), [
    ("empty", "is empty", "Give a UTF-8 file"),
    ("binary", "binary file", "gunzip"),
    ("utf-16", "is UTF-16LE, not UTF-8", "iconv -f UTF-16LE -t UTF-8"),
    ("latin-1", r"not UTF-8 \(byte 0xe4 on line 2\)", "iconv -f"),
    ("directory", "is a directory", "Name a file inside it"),
    ("missing", "does not exist", "Check the path"),
])
def test_unreadable_dictionary_names_the_path_and_the_fix(tmp_path: Path, reader, kind: str, problem: str, fix: str) -> None:
    path = _bad_file(tmp_path, kind)
    with pytest.raises(UserError) as caught:
        reader(path)
    assert str(path) in caught.value.problem
    assert re.search(problem, caught.value.problem), caught.value.problem
    assert fix in caught.value.fix


def test_one_column_dictionary_is_named_as_such(tmp_path: Path) -> None:
    path = _bad_file(tmp_path, "one column")
    with pytest.raises(UserError, match="one column only.*'water'") as caught:
        d.read_muse(path)
    assert str(path) in caught.value.problem and "'source target'" in caught.value.fix


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


#: task 3's version -> the sha256 of the frozen CLDR text it reads by default. A new file
#: (a newer CLDR) without a new task version fails here: the same version must mean the same data.
FROZEN_CLDR_BY_TASK_VERSION = {"3": "3a00e5cc71b29c6290f97013cfeae119b6eb701fe6b270257423fe9a55066e96"}


def test_frozen_cldr_data_goes_with_the_task_version() -> None:
    import hashlib

    from xlingbench.tasks.translation_in_neighbours import TASK

    text = gzip.decompress(d.CLDR_FILE.read_bytes())
    assert hashlib.sha256(text).hexdigest() == FROZEN_CLDR_BY_TASK_VERSION[TASK.metadata.version] == d.CLDR_SHA256
    header, _ = d.frozen_cldr()
    assert header["cldr_version"] == "49" and "Unicode License" in header["licence"]


def test_cldr_default_reads_no_babel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever babel is installed (or none), the default dictionaries are the frozen ones."""
    monkeypatch.setitem(sys.modules, "babel", None)
    monkeypatch.setitem(sys.modules, "babel.core", None)
    assert d.cldr_dictionary("de").source == "cldr 49 (frozen)"


def test_frozen_cldr_equals_the_freezing_script_on_its_babel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The data file is what scripts/freeze_cldr_dictionaries.py makes from the recorded babel."""
    import importlib.util

    babel = pytest.importorskip("babel")
    header, _ = d.frozen_cldr()
    if babel.__version__ != header["babel_version"]:
        pytest.skip(f"babel {babel.__version__} installed; the data was frozen with {header['babel_version']}")
    script = Path(__file__).resolve().parents[1] / "scripts" / "freeze_cldr_dictionaries.py"
    spec = importlib.util.spec_from_file_location("freeze_cldr", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "OUT", tmp_path / "out.tsv.gz")
    module.main()
    assert gzip.decompress((tmp_path / "out.tsv.gz").read_bytes()) == gzip.decompress(d.CLDR_FILE.read_bytes())
