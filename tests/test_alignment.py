"""Dictionary induction: symmetrisation, Moses-style lexical probabilities, the lexical-table
writer against the project's reader, and both aligners (fast_align, eflomal) on a corpus with a
known dictionary, cached under a key that names the aligner."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import xlingbench.inputs.alignment as alignment
from xlingbench.inputs.cache import Cache
from xlingbench.core.errors import UserError
from xlingbench.compute.alignment import best_translations, grow_diag_final_and, lexical_table, links_array, per_sentence
from xlingbench.inputs.alignment import read_links, write_lexical_table
from xlingbench.inputs.dictionaries import read_lexical_table

PUD = Path("/work/shared/data/pud")
MUSE = Path("/work/shared/data/muse")


def test_grow_diag_adds_neighbours_of_the_intersection() -> None:
    forward = {(0, 0), (1, 1), (2, 1)}
    reverse = {(0, 0), (1, 1), (2, 2)}
    # (2,1): source 2 unaligned, next to (1,1); then (2,2): target 2 unaligned, diagonal to (1,1)
    assert grow_diag_final_and(forward, reverse) == {(0, 0), (1, 1), (2, 1), (2, 2)}


def test_grow_diag_ignores_union_links_between_aligned_words() -> None:
    forward = {(0, 0), (1, 1), (0, 1)}
    reverse = {(0, 0), (1, 1)}
    assert grow_diag_final_and(forward, reverse) == {(0, 0), (1, 1)}


def test_final_and_adds_isolated_links_only_between_unaligned_words() -> None:
    forward = {(0, 0), (3, 3), (0, 5)}
    reverse = {(0, 0), (6, 0)}
    # (3,3): both unaligned, not a neighbour -> added by final-and; (0,5) and (6,0): one side aligned -> not
    assert grow_diag_final_and(forward, reverse) == {(0, 0), (3, 3)}


def test_lexical_table_counts_unaligned_source_words_as_null() -> None:
    src = [["a", "b"], ["a", "a"], ["b"]]
    tgt = [["x", "y"], ["x"], ["z"]]
    links = [{(0, 0), (1, 1)}, {(0, 0)}, {(0, 0)}]
    table = lexical_table(src, tgt, links)
    # a: 2 links to x + 1 unaligned occurrence -> 2/3; b: one link to y, one to z
    assert table == {"a": [("x", pytest.approx(2 / 3))], "b": [("y", 0.5), ("z", 0.5)]}


def test_best_translations_keeps_the_top_n_by_probability_then_word() -> None:
    table = {"a": [("q", 0.1), ("x", 0.4), ("w", 0.4), ("y", 0.1)]}
    assert best_translations(table, 3) == {"a": ["w", "x", "q"]}


def test_lexical_table_round_trips_through_the_reader(tmp_path: Path) -> None:
    table = {"Haus": [("house", 0.75), ("home", 0.25)], "->": [("→", 1 / 3)], "à": [("to", 1e-7)]}
    path = tmp_path / "lex.txt"
    write_lexical_table(table, path)
    assert read_lexical_table(path) == table
    assert path.read_text(encoding="utf-8").splitlines()[0] == "Haus -> house: Probability = 0.75"


def test_read_links(tmp_path: Path) -> None:
    path = tmp_path / "links"
    path.write_text("0-1 2-0\n\n1-1\n")
    assert read_links(path) == [{(0, 1), (2, 0)}, set(), {(1, 1)}]


def test_links_array_and_per_sentence_are_inverse() -> None:
    links = [{(0, 1), (2, 0)}, set(), {(1, 1)}]
    array = links_array(links)
    assert array.tolist() == [[0, 0, 1], [0, 2, 0], [2, 1, 1]] and array.dtype == np.int32
    assert per_sentence(array, 4) == links + [set()]


def test_missing_eflomal_is_a_user_error_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "eflomal", None)  # makes "import eflomal" raise ImportError
    with pytest.raises(UserError, match=r"xlingbench\[align\]"):
        alignment.require_eflomal()


def substitution_corpus(n_sentences: int = 400, seed: int = 0) -> tuple[list[list[str]], list[list[str]], dict[str, str]]:
    """A "language" that replaces every word by its own fixed translation and reverses the
    word order: the dictionary is known exactly, the alignment is not monotone."""
    rng = np.random.default_rng(seed)
    vocabulary = [f"w{i}" for i in range(40)]
    translation = {w: f"T{w[1:]}x" for w in vocabulary}
    src = [list(rng.choice(vocabulary, size=rng.integers(4, 10), replace=False)) for _ in range(n_sentences)]
    tgt = [[translation[w] for w in reversed(sentence)] for sentence in src]
    return src, tgt, translation


@pytest.mark.parametrize("aligner", ["fast_align", "eflomal"])
def test_induction_recovers_a_planted_dictionary_and_is_cached(aligner: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if aligner == "eflomal":
        pytest.importorskip("eflomal")
    src, tgt, translation = substitution_corpus()
    cache = Cache(tmp_path)
    induced = alignment.induce_dictionary(src, tgt, cache=cache, corpus_fingerprint="subst", pair=("xx", "yy"), aligner=aligner)
    assert {s: tr[0][0] for s, tr in induced.table.items()} == translation
    assert all(tr[0][1] > 0.9 for tr in induced.table.values())
    assert induced.links.shape[1] == 3 and read_lexical_table(induced.path) == induced.table
    assert induced.aligner.startswith(f"{aligner}-") and induced.deterministic == (aligner == "fast_align")
    monkeypatch.setattr(alignment, "word_align", lambda *a: pytest.fail("aligned again instead of reading the cache"))
    again = alignment.induce_dictionary(src, tgt, cache=cache, corpus_fingerprint="subst", pair=("xx", "yy"), aligner=aligner)
    assert again.table == induced.table and np.array_equal(again.links, induced.links)


def test_each_aligner_has_its_own_cache_entry(tmp_path: Path) -> None:
    pytest.importorskip("eflomal")
    src, tgt, _ = substitution_corpus(60)
    kwargs = dict(cache=Cache(tmp_path), corpus_fingerprint="subst", pair=("xx", "yy"))
    fast = alignment.induce_dictionary(src, tgt, **kwargs)
    eflomal = alignment.induce_dictionary(src, tgt, aligner="eflomal", **kwargs)
    assert fast.fingerprint != eflomal.fingerprint and fast.path != eflomal.path


def test_unknown_aligner_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="fast_align, eflomal"):
        alignment.induce_dictionary([["a"]], [["b"]], cache=Cache(tmp_path), corpus_fingerprint="x", pair=("xx", "yy"),
                                    aligner="giza")


@pytest.mark.integration
@pytest.mark.skipif(not (PUD / "pud.en.tok").is_file() or not (MUSE / "en-de.tsv").is_file(), reason="PUD / MUSE data absent")
@pytest.mark.parametrize("aligner", ["fast_align", "eflomal"])
def test_induced_en_de_dictionary_agrees_with_muse_on_frequent_words(aligner: str, tmp_path: Path) -> None:
    if aligner == "eflomal":
        pytest.importorskip("eflomal")
    from xlingbench.inputs.dictionaries import group, read_muse

    src, tgt = ([line.split() for line in (PUD / f"pud.{lang}.tok").read_text(encoding="utf-8").splitlines()] for lang in ("en", "de"))
    induced = alignment.induce_dictionary(src, tgt, cache=Cache(tmp_path), corpus_fingerprint="pud", pair=("en", "de"),
                                          aligner=aligner)
    muse = group(read_muse(MUSE / "en-de.tsv"))
    counts: dict[str, int] = {}
    for sentence in src:
        for w in sentence:
            counts[w] = counts.get(w, 0) + 1
    frequent = [w for w in sorted(counts, key=counts.get, reverse=True) if w in muse and w in induced.table][:200]
    top10 = best_translations(induced.table, 10)
    hits = sum(1 for w in frequent if set(top10[w]) & set(muse[w]))
    assert hits / len(frequent) > 0.6
