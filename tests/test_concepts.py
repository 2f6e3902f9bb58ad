"""CALIGN and COLAP on hand-built concepts with known answers, against brute force, and the
calign / colap tasks end to end on planted word vectors."""
from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest

from xlingbench.inputs.cache import Cache
from xlingbench.core.errors import UserError
from xlingbench.core.params import build
from xlingbench.inputs.representations import Representations
from xlingbench.compute.concepts import (
    bound_share,
    one_sentence_share,
    calign,
    cap_aligned_pairs,
    cap_occurrences,
    colap,
    concepts_from_labels,
    context_bound,
    controlled_calign,
    controlled_colap,
    opening_words,
    parse_layers,
    rows_at,
    sentence_bound,
)


def concept_pair(n_src: int, n_tgt: int, n_translated: int, tag: str = "") -> tuple[set[str], set[str], dict[str, list[str]]]:
    """A source concept of n_src types, a target concept of n_tgt types, and a dictionary sending
    the first n_translated source words into the target concept (round robin)."""
    src = {f"s{tag}{i}" for i in range(n_src)}
    tgt = {f"t{tag}{j}" for j in range(n_tgt)}
    translations = {f"s{tag}{i}": [f"t{tag}{i % n_tgt}"] for i in range(n_translated)}
    return src, tgt, translations


def single(n_src: int, n_tgt: int, n_translated: int) -> float:
    src, tgt, translations = concept_pair(n_src, n_tgt, n_translated)
    return calign({0: src}, {0: tgt}, translations).percentage


@pytest.mark.parametrize(
    ("n_src", "n_tgt", "n_translated", "expected"),
    [
        (6, 6, 6, 100.0),  # 6 > 5 types: counted
        (5, 5, 5, 0.0),  # exactly 5 types: not counted (more than 5 required)
        (10, 10, 8, 100.0),  # aligned fraction exactly 0.8: counted
        (10, 10, 7, 0.0),  # 0.7: not
        (100, 100, 80, 100.0),
        (100, 100, 79, 0.0),  # 0.79, just under
        (20, 12, 20, 100.0),  # sizes 12/20 = 0.6 exactly: counted
        (20, 11, 20, 0.0),  # 11/20 = 0.55, just past 40%: not
        (12, 20, 12, 100.0),  # small source, large target, 0.6: counted (two-sided)
        (11, 20, 11, 0.0),  # small source, large target, 0.55: not
        (20, 6, 20, 0.0),  # large source onto a tiny target: the published one-sided test passes this
    ],
)
def test_calign_thresholds(n_src: int, n_tgt: int, n_translated: int, expected: float) -> None:
    assert single(n_src, n_tgt, n_translated) == expected


def test_calign_counts_source_concepts_not_k_and_lists_alignments() -> None:
    a_src, a_tgt, a_tr = concept_pair(8, 8, 8, "a")
    b_src, b_tgt, b_tr = concept_pair(8, 8, 2, "b")  # 25% translated: not aligned
    c_src = {f"c{i}" for i in range(4)}  # too small to count, still in the denominator
    result = calign({0: a_src, 1: b_src, 2: c_src}, {5: b_tgt, 7: a_tgt}, {**a_tr, **b_tr})
    assert result.n_source_concepts == 3 and result.n_aligned == 1
    assert result.alignments == {0: [7]}
    assert result.percentage == pytest.approx(100 / 3)


def test_calign_counts_a_word_once_per_target_concept_and_may_align_to_several() -> None:
    src = {f"s{i}" for i in range(10)}
    translations = {f"s{i}": [f"t{i}", f"u{i}"] for i in range(8)}  # two translations each, both in one concept
    tgt = {1: {f"t{i}" for i in range(10)} | {f"u{i}" for i in range(3)}, 2: {f"u{i}" for i in range(10)}}
    result = calign({0: src}, tgt, translations)
    # concept 1: 8/10 words aligned (not 11) and size 10/13 >= 0.6; concept 2: 8/10 too
    assert result.alignments == {0: [1, 2]}


def test_calign_rejects_percentages() -> None:
    with pytest.raises(ValueError, match="fraction"):
        calign({}, {}, {}, theta_a=80)


def brute_calign(src, tgt, translations, theta_a, min_types, size_ratio, units=(1, 1)) -> tuple[float, dict[int, list[int]]]:
    """The definition, literally: every source concept against every target concept."""
    aligned: dict[int, list[int]] = {}
    for (sid, cs), (tid, ct) in itertools.product(sorted(src.items()), sorted(tgt.items())):
        count = sum(1 for w in cs if any(t in ct for t in translations.get(w, [])))
        a, b = len(cs) / units[0], len(ct) / units[1]
        if len(cs) > min_types and count / len(cs) >= theta_a and min(a, b) / max(a, b) >= size_ratio:
            aligned.setdefault(sid, []).append(tid)
    return 100 * len(aligned) / len(src), aligned


def random_concepts(seed: int) -> tuple[dict, dict, dict]:
    """Target concepts are noisy copies of the source ones; words occur in 1-2 concepts."""
    rng = np.random.default_rng(seed)
    n_words, k = 300, 20
    src_labels = rng.integers(k, size=n_words)
    tgt_labels = np.where(rng.random(n_words) < 0.85, src_labels, rng.integers(k, size=n_words))
    src = concepts_from_labels(np.concatenate([src_labels, rng.integers(k, size=30)]),
                               [f"s{i}" for i in range(n_words)] + [f"s{i}" for i in rng.integers(n_words, size=30)])
    tgt = concepts_from_labels(tgt_labels, [f"t{i}" for i in range(n_words)])
    translations = {f"s{i}": [f"t{i}"] + [f"t{j}" for j in rng.integers(n_words, size=rng.integers(0, 3))]
                    for i in range(n_words) if rng.random() < 0.95}
    return src, tgt, translations


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("theta_a", "size_ratio"), [(0.8, 0.6), (0.6, 0.8), (0.9, 0.5)])
def test_calign_matches_brute_force(seed: int, theta_a: float, size_ratio: float) -> None:
    src, tgt, translations = random_concepts(seed)
    result = calign(src, tgt, translations, theta_a, 5, size_ratio)
    percentage, aligned = brute_calign(src, tgt, translations, theta_a, 5, size_ratio)
    assert (result.percentage, result.alignments) == (pytest.approx(percentage), aligned)


@pytest.mark.parametrize("seed", range(4))
def test_calign_in_size_units_matches_brute_force(seed: int) -> None:
    src, tgt, translations = random_concepts(seed)
    for units in ((1.0, 2.0), (3.0, 1.5)):
        result = calign(src, tgt, translations, 0.8, 5, 0.6, units)
        percentage, aligned = brute_calign(src, tgt, translations, 0.8, 5, 0.6, units)
        assert (result.percentage, result.alignments) == (pytest.approx(percentage), aligned)


def test_brute_force_comparison_is_not_vacuous() -> None:
    results = [calign(*random_concepts(seed)) for seed in range(6)]
    assert any(0 < r.n_aligned < r.n_source_concepts for r in results)


@pytest.mark.parametrize(
    ("counts", "overlaps"),
    [
        ({"en": 3, "de": 7}, True),  # 30% exactly counts
        ({"en": 2, "de": 8}, False),
        ({"en": 3, "de": 3, "fr": 4}, True),
        ({"en": 2, "de": 2, "fr": 6}, False),  # only one language at >= 30%
        ({"en": 10}, False),
    ],
)
def test_colap_threshold(counts: dict[str, int], overlaps: bool) -> None:
    langs = [lang for lang, n in counts.items() for _ in range(n)]
    result = colap([4] * len(langs), langs)
    assert result.percentage == (100.0 if overlaps else 0.0)
    assert result.shares[4] == {lang: n / len(langs) for lang, n in counts.items()}


def test_colap_counts_concepts() -> None:
    labels = [0, 0, 0, 1, 1, 1, 1, 9, 9]
    langs = ["en", "de", "de", "en", "en", "en", "de", "fr", "en"]
    result = colap(labels, langs)
    assert (result.n_concepts, result.n_overlapping, result.overlapping) == (3, 2, [0, 9])
    assert result.percentage == pytest.approx(200 / 3)


def test_colap_rejects_percentages() -> None:
    with pytest.raises(ValueError, match="fraction"):
        colap([0], ["en"], theta_o=30)


@pytest.mark.parametrize("seed", range(5))
def test_colap_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(40, size=600)
    langs = rng.choice(["en", "de", "fr"], size=600, p=[0.6, 0.3, 0.1])
    overlapping = [c for c in sorted(set(labels.tolist()))
                   if sum(1 for lang in "en de fr".split()
                          if np.sum(langs[labels == c] == lang) / np.sum(labels == c) >= 0.3) >= 2]
    result = colap(labels, langs, 0.3)
    assert result.overlapping == overlapping and 0 < len(overlapping) < 40
    assert result.percentage == pytest.approx(100 * len(overlapping) / len(set(labels.tolist())))


def test_concepts_from_labels_are_sets_of_types() -> None:
    assert concepts_from_labels(np.array([1, 1, 2, 1]), ["a", "b", "a", "a"]) == {1: {"a", "b"}, 2: {"a"}}


def test_cap_occurrences_keeps_at_most_n_per_key_seeded() -> None:
    keys = ["the"] * 40 + ["cat"] * 3 + ["sat"] * 15
    kept = cap_occurrences(keys, 15, seed=1)
    counts = {k: sum(1 for i in kept if keys[i] == k) for k in set(keys)}
    assert counts == {"the": 15, "cat": 3, "sat": 15}
    assert np.array_equal(kept, np.sort(kept))
    assert np.array_equal(kept, cap_occurrences(keys, 15, seed=1))
    assert not np.array_equal(kept, cap_occurrences(keys, 15, seed=2))


def test_cap_aligned_pairs_caps_per_word_pair_and_keeps_aligned_words_only() -> None:
    src = [["a", "b", "c"]] * 20
    tgt = [["x", "y"]] * 20
    links = np.array([(k, 0, 0) for k in range(20)] + [(k, 1, 1) for k in range(3)], dtype=np.int32)
    src_pos, tgt_pos = cap_aligned_pairs(links, src, tgt, max_per_pair=5, seed=0)
    assert sum(1 for _, i in src_pos if i == 0) == 5 and sum(1 for _, i in src_pos if i == 1) == 3
    assert all(i != 2 for _, i in src_pos)  # "c" is never aligned
    assert {j for _, j in tgt_pos} == {0, 1} and len(tgt_pos) == 8


def test_rows_at_and_parse_layers() -> None:
    assert rows_at(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]), {(1, 0), (0, 1), (5, 5)}).tolist() == [1, 2]
    assert parse_layers("all", 4) == [0, 1, 2, 3]
    assert parse_layers("3, 0", 4) == [0, 3]
    for bad in ("4", "x", ""):
        with pytest.raises(ValueError):
            parse_layers(bad, 4)


# --- the tasks end to end, on planted vectors (no model) -------------------------------------


class FakeVectors:
    """The WordVectors API over in-memory arrays: layer 0 is noise, layer 1 holds planted concepts."""

    def __init__(self, sentences: list[list[str]], concept_of: dict[str, int], centres: np.ndarray, seed: int) -> None:
        rng = np.random.default_rng(seed)
        occurrences = [(k, i, w) for k, sentence in enumerate(sentences) for i, w in enumerate(sentence)]
        self.sentence_ids = np.array([k for k, _, _ in occurrences])
        self.word_positions = np.array([i for _, i, _ in occurrences])
        self.words = [w for _, _, w in occurrences]
        self.num_layers, self.info = 2, {"fake": True}
        noise = rng.normal(size=(len(self.words), centres.shape[1]))
        self._layers = [rng.normal(scale=10, size=noise.shape).astype(np.float16),
                        (centres[[concept_of[w] for w in self.words]] + 0.05 * noise).astype(np.float16)]

    def layer(self, layer: int) -> np.ndarray:
        return self._layers[layer]


def planted_corpus(n_concepts: int = 30, types_per_concept: int = 12, n_sentences: int = 300):
    """English-like words e<c>_<i> and their German-like translations g<c>_<i>, word for word;
    each translation pair shares one planted concept centre."""
    rng = np.random.default_rng(0)
    en = [f"e{c}_{i}" for c in range(n_concepts) for i in range(types_per_concept)]
    concept_of = {w: int(w[1:].split("_")[0]) for w in en}
    concept_of.update({"g" + w[1:]: c for w, c in concept_of.items()})
    en_sents = [list(rng.choice(en, size=8)) for _ in range(n_sentences)]
    sentences = {"en": en_sents, "de": [["g" + w[1:] for w in s] for s in en_sents]}
    corpus = SimpleNamespace(languages=["en", "de"], sentences=sentences, fingerprint="planted-v1",
                             source="planted", word_tokenizer="gold", dropped_long=0)
    centres = np.random.default_rng(1).normal(scale=20, size=(n_concepts, 16))
    return corpus, concept_of, centres


class PlantedRepresentations(Representations):
    """Representations whose corpus and word vectors are planted; concepts are clustered and cached for real."""

    def __init__(self, cache: Cache) -> None:
        super().__init__(SimpleNamespace(model_id="fake", revision="0", arch="encoder"), cache)
        self.planted, self.concept_of, self.centres = planted_corpus()

    def corpus(self, spec, languages, limit=0):
        return self.planted

    def word_vectors(self, corpus, language, settings):
        return FakeVectors(corpus.sentences[language], self.concept_of, self.centres, seed=["en", "de"].index(language))


@pytest.fixture
def planted_task(tmp_path):
    """The planted representations (a function of the task module, for the tests' shape) and the corpus."""
    inputs = PlantedRepresentations(Cache(tmp_path / "cache"))
    return (lambda module: inputs), inputs.planted


def test_calign_task_on_planted_concepts(planted_task, tmp_path) -> None:
    pytest.importorskip("xlingbench.inputs.dictionaries", reason="tasks/dictionaries.py (read_muse) not written yet")
    import xlingbench.tasks.calign as calign_task

    patch, corpus = planted_task
    inputs = patch(calign_task)
    muse = tmp_path / "en-de.txt"
    muse.write_text("".join(f"e{w[1:]} g{w[1:]}\n" for w in sorted({w for s in corpus.sentences["en"] for w in s})))
    params = calign_task.Params(dictionary=str(muse), k=30, seed=0)
    result = calign_task.run(inputs, params)
    curve = dict(result.step_metrics["calign"])
    assert curve[1] == 100.0 and curve[0] < 50.0
    assert result.metrics["calign_max"] == 100.0 and result.metrics["calign_max_layer"] == 1.0
    assert result.info["k"] == 30 and result.info["occurrence_cap"] == "aligned word pair"
    assert result.tables["aligned_concepts"] and calign_task.TASK.metadata.charts[0].kind == "line"
    again = calign_task.run(inputs, params)  # cluster labels now come from the cache
    assert again.step_metrics == result.step_metrics


def test_calign_task_shrinks_k_and_says_so(planted_task, tmp_path) -> None:
    pytest.importorskip("xlingbench.inputs.dictionaries", reason="tasks/dictionaries.py (read_muse) not written yet")
    import xlingbench.tasks.calign as calign_task

    inputs = planted_task[0](calign_task)
    muse = tmp_path / "en-de.txt"
    muse.write_text("e0_0 g0_0\n")
    result = calign_task.run(inputs, calign_task.Params(dictionary=str(muse), layers="1"))
    assert result.info["k"] == min(result.info["types"].values()) // 10 < 600
    assert "600" in result.info["warnings"][0]
    # one dictionary entry covers almost none of the source types: the run says so and logs the share
    assert any("covers only" in w for w in result.info["warnings"]) and result.metrics["dictionary_coverage"] < 0.01


def test_calign_match_case_reads_a_capitalised_dictionary(planted_task, tmp_path) -> None:
    import xlingbench.tasks.calign as calign_task

    patch, corpus = planted_task
    inputs = patch(calign_task)
    muse = tmp_path / "en-de.txt"
    muse.write_text("".join(f"E{w[1:]} G{w[1:]}\n" for w in sorted({w for s in corpus.sentences["en"] for w in s})))
    with pytest.raises(UserError, match="no entry"):  # case-sensitive: "E0_1" is not "e0_1"
        calign_task.run(inputs, calign_task.Params(dictionary=str(muse), k=30, n_init=2, layers="1"))
    folded = calign_task.run(inputs, calign_task.Params(dictionary=str(muse), k=30, n_init=2, layers="1", match_case=False))
    assert folded.metrics["dictionary_coverage"] == 1.0 and folded.metrics["calign_max"] == 100.0


def test_calign_task_errors_on_a_dictionary_without_matching_words(planted_task, tmp_path) -> None:
    pytest.importorskip("xlingbench.inputs.dictionaries", reason="tasks/dictionaries.py (read_muse) not written yet")
    import xlingbench.tasks.calign as calign_task

    inputs = planted_task[0](calign_task)
    muse = tmp_path / "de-en.txt"
    muse.write_text("g0_0 e0_0\n")  # the wrong direction
    with pytest.raises(UserError, match="no entry"):
        calign_task.run(inputs, calign_task.Params(dictionary=str(muse), layers="1"))
    with pytest.raises(UserError, match="two or more"):
        build("calign", calign_task.Params, {"languages": "en"})
    with pytest.raises(UserError, match="exactly two"):
        build("calign", calign_task.Params, {"languages": "en,de,fr"})


def test_colap_task_on_planted_concepts(planted_task) -> None:
    import xlingbench.tasks.colap as colap_task

    inputs = planted_task[0](colap_task)
    result = colap_task.run(inputs, colap_task.Params(k=30, seed=0))
    curve = dict(result.step_metrics["colap"])
    assert curve[1] == 100.0  # every planted concept holds its English and German words alike
    assert result.metrics["colap_max"] == 100.0
    assert result.tables["overlapping_concepts"] and result.info["k"] == 30
    with pytest.raises(UserError, match="different"):
        build("colap", colap_task.Params, {"languages": "en,en"})


def test_one_sentence_share_against_a_loop() -> None:
    rng = np.random.default_rng(3)
    labels, sentences = rng.integers(0, 12, size=400), rng.integers(0, 30, size=400)
    sentences[labels == 4] = 7  # concept 4: one sentence only
    expected = 0
    for concept in np.unique(labels):
        members = sentences[labels == concept]
        expected += max(np.sum(members == s) for s in np.unique(members)) > len(members) / 2
    assert one_sentence_share(labels, sentences) == pytest.approx(100 * expected / len(np.unique(labels)))
    assert one_sentence_share([0, 0, 1, 1], [5, 5, 5, 6]) == 50.0  # exactly half is not "more than half"
    assert one_sentence_share([0, 0, 0], [1, 2, 3]) == 0.0


def test_sentence_bound_against_a_loop() -> None:
    rng = np.random.default_rng(5)
    labels, sentences = rng.integers(0, 15, size=500), rng.integers(0, 40, size=500)
    sentences[labels == 2] = 9
    sentences[np.flatnonzero(labels == 11)[::3]] = 4  # about a third: not bound
    expected = {int(c) for c in np.unique(labels)
                if max(np.sum(sentences[labels == c] == s) for s in np.unique(sentences[labels == c])) * 2 > np.sum(labels == c)}
    assert sentence_bound(labels, sentences) == expected and 2 in expected and 11 not in expected
    assert one_sentence_share(labels, sentences) == pytest.approx(100 * len(expected) / 15)


def test_opening_words_and_context_bound_against_a_loop() -> None:
    """Planted: concept 2 is a *message family* (sentences 0-9, each under a fifth of it, all
    opening with "Count"), concept 5 one sentence; concept 7 spans many sentences and openings."""
    rng = np.random.default_rng(8)
    firsts = ["Count", "count", "The", "Enter", "Show"]
    sentences_words = [[firsts[k % 5] if k >= 10 else "Count", f"w{k}", "x"] for k in range(60)]
    sentences_words[59] = []  # an empty sentence has no opening and no occurrences
    labels, ids = rng.integers(0, 9, size=600), rng.integers(10, 59, size=600)
    ids[labels == 2] = rng.integers(0, 10, size=int(np.sum(labels == 2)))
    ids[labels == 5] = 33
    openings = opening_words(sentences_words, ids)
    assert openings == [sentences_words[k][0].lower() for k in ids.tolist()] and "count" in openings
    expected = set()
    for c in np.unique(labels).tolist():
        members = np.flatnonzero(labels == c)
        for groups in (ids.tolist(), openings):
            if max(sum(groups[i] == g for i in members) for g in {groups[i] for i in members}) * 2 > len(members):
                expected.add(c)
    bound = context_bound(labels, ids, openings)
    assert bound == expected and {2, 5} <= bound and 7 not in bound
    assert 2 not in sentence_bound(labels, ids)  # the family is what the sentence test cannot see
    assert bound_share(bound, labels) == pytest.approx(100 * len(expected) / 9)
    # a word opening half of a concept's sentences is not "more than half"
    assert context_bound([0, 0, 0, 0], [1, 2, 3, 4], ["a", "a", "b", "c"]) == set()
    assert context_bound([0, 0, 0], [1, 2, 3], ["a", "a", "b"]) == {0}
    with pytest.raises(ValueError, match="openings"):
        context_bound([0, 1], [0, 1], ["a"])


def test_controlled_calign_leaves_sentence_bound_concepts_out_of_both_sides() -> None:
    # concepts 0-2 align to 0-2; source 1 is sentence-bound; target 2 is sentence-bound
    pairs = [concept_pair(8, 8, 8, tag=str(c)) for c in range(3)]
    src = {c: s for c, (s, _, _) in enumerate(pairs)}
    tgt = {c: t for c, (_, t, _) in enumerate(pairs)}
    translations = {w: ts for _, _, tr in pairs for w, ts in tr.items()}
    src[3] = {f"x{i}" for i in range(8)}  # a fourth, unaligned source concept
    assert calign(src, tgt, translations).n_aligned == 3
    result = controlled_calign(src, tgt, {1}, {2}, translations)
    assert result.alignments == {0: [0]} and result.n_source_concepts == 4 and result.percentage == 25.0
    assert controlled_calign(src, tgt, set(), set(), translations).percentage == calign(src, tgt, translations).percentage


def test_controlled_calign_compares_sizes_in_each_languages_mean_concept_size() -> None:
    """Planted: the target language writes every word in two forms (German inflection), so all its
    concepts are twice as large. The paper's raw size test (8 against 16 types: 0.5 < 0.6) rejects
    every true pair; the controlled one compares 8/8 with 16/16 and keeps them, while a match into
    a giant target concept (80 types, five times its language's mean) is still rejected."""
    src = {c: {f"e{c}_{i}" for i in range(8)} for c in range(12)}
    tgt = {c: {f"g{c}_{i}{form}" for i in range(8) for form in "ab"} for c in range(12)}
    translations = {f"e{c}_{i}": [f"g{c}_{i}a", f"g{c}_{i}b"] for c in range(12) for i in range(8)}
    assert calign(src, tgt, translations).n_aligned == 0
    assert controlled_calign(src, tgt, set(), set(), translations).alignments == {c: [c] for c in range(12)}
    giant = {c: ws for c, ws in tgt.items() if c != 0}
    giant[99] = tgt[0] | {f"z{i}" for i in range(64)}  # concept 0's words lost in 80 types
    result = controlled_calign(src, giant, set(), set(), translations)
    assert 0 not in result.alignments and len(result.alignments) == 11


def test_controlled_colap_against_a_loop() -> None:
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 10, size=400)
    langs = rng.choice(["en", "de"], size=400)
    langs[(labels == 8) & (rng.random(400) < 0.25)] = "en"  # concept 8: about 60% English
    # every word's translation is its own label's "t<label>_<i>": concepts hold words with their translations ...
    index = rng.integers(0, 3, size=400)
    words = [f"{'s' if lang == 'en' else 't'}{label}_{i}" for label, lang, i in zip(labels, langs, index)]
    translations = {("en", "de"): {f"s{c}_{i}": [f"t{c}_{i}"] for c in range(10) for i in range(3)}}
    sentences = rng.integers(0, 50, size=400)
    sentences[labels == 3] = 17  # one sentence pair, both languages: overlapping and bound
    words = [w if label != 5 else w.replace("t", "u") for w, label in zip(words, labels.tolist())]  # ... but concept 5
    # openings: 8 words a language; concept 8's English occurrences (over half of it) all open with one
    # word (a family of sentences that begin alike), though it still overlaps with German
    openings = [(lang, f"o{k % 8}") for lang, k in zip(langs.tolist(), sentences.tolist())]
    openings = [("en", "o0") if label == 8 and lang == "en" else o for o, label, lang in zip(openings, labels.tolist(), langs.tolist())]
    plain = colap(labels, langs, 0.3)
    controlled = controlled_colap(labels, langs, context_bound(labels, sentences, openings), words, translations, 0.3, 0.5)
    expected = []
    for c in plain.overlapping:
        en = {w for w, label, lang in zip(words, labels, langs) if label == c and lang == "en"}
        de = {w for w, label, lang in zip(words, labels, langs) if label == c and lang == "de"}
        translated = sum(1 for w in en if set(translations["en", "de"].get(w, [])) & de)
        members = np.flatnonzero(labels == c)
        largest = max(max(sum(sentences[members] == s) for s in set(sentences[members].tolist())),
                      max(sum(openings[i] == o for i in members) for o in {openings[i] for i in members}))
        if largest * 2 <= len(members) and translated >= 0.5 * len(en):
            expected.append(c)
    assert 8 in plain.overlapping and controlled.overlapping == expected
    assert {3, 5, 8}.isdisjoint(expected) and len(expected) == len(plain.overlapping) - 3
    assert controlled.percentage == pytest.approx(100 * len(expected) / plain.n_concepts)
    # without dictionaries nothing is an overlap of meaning
    assert controlled_colap(labels, langs, context_bound(labels, sentences, openings), words, {}, 0.3, 0.5).percentage == 0.0


class SentenceVectors(FakeVectors):
    """Layer 1 puts every word of a sentence, in either language, at that sentence pair's centre: the
    concepts a random causal decoder makes in the limit, or a sentence-embedding model's last layer."""

    def __init__(self, sentences: list[list[str]], seed: int) -> None:
        rng = np.random.default_rng(seed)
        super().__init__(sentences, {w: 0 for s in sentences for w in s}, np.zeros((1, 16)), seed)
        centres = np.random.default_rng(7).normal(scale=20, size=(len(sentences), 16))
        self._layers[1] = (centres[self.sentence_ids] + 0.05 * rng.normal(size=(len(self.words), 16))).astype(np.float16)


class SentenceRepresentations(PlantedRepresentations):
    """30 parallel sentences of 12 words, every word type once: concepts of layer 1 are sentences."""

    def __init__(self, cache: Cache) -> None:
        super().__init__(cache)
        en = [[f"e{k}_{i}" for i in range(12)] for k in range(30)]
        sentences = {"en": en, "de": [["g" + w[1:] for w in s] for s in en]}
        self.planted = SimpleNamespace(languages=["en", "de"], sentences=sentences, fingerprint="sentences-v1",
                                       source="planted", word_tokenizer="gold", dropped_long=0)

    def word_vectors(self, corpus, language, settings):
        return SentenceVectors(corpus.sentences[language], seed=["en", "de"].index(language))


def test_sentence_clusters_score_on_the_papers_calign_and_colap_and_zero_controlled(tmp_path) -> None:
    import xlingbench.tasks.calign as calign_task
    import xlingbench.tasks.colap as colap_task

    inputs = SentenceRepresentations(Cache(tmp_path / "cache"))
    muse = tmp_path / "en-de.txt"
    muse.write_text("".join(f"e{k}_{i} g{k}_{i}\n" for k in range(30) for i in range(12)))
    result = calign_task.run(inputs, calign_task.Params(dictionary=str(muse), k=30, n_init=3, layers="1"))
    assert result.metrics["calign_max"] > 50 and result.metrics["calign_controlled_max"] == 0.0
    assert dict(result.step_metrics["one_sentence_concepts"])[1] > 90
    assert any("calign_max=" in w and "context-bound" in w for w in result.info["warnings"])
    overlap = colap_task.run(inputs, colap_task.Params(k=30, n_init=3, layers="1"))
    assert overlap.metrics["colap_max"] > 50 and overlap.metrics["colap_controlled_max"] == 0.0
    assert any("colap_max=" in w for w in overlap.info["warnings"])


class FamilyRepresentations(SentenceRepresentations):
    """60 parallel sentences in 10 *message families* of 6 ("Count e<k>_1 ...", "Zählen g<k>_1 ..."):
    layer 1 puts every word of a family at the family's centre, what a random causal decoder does
    with sentences that begin alike. No sentence holds more than a sixth of a family's words."""

    def __init__(self, cache: Cache) -> None:
        super().__init__(cache)
        en = [[f"open{k // 6}"] + [f"e{k}_{i}" for i in range(1, 12)] for k in range(60)]
        de = [[f"auf{k // 6}"] + ["g" + w[1:] for w in s[1:]] for k, s in enumerate(en)]
        self.planted = SimpleNamespace(languages=["en", "de"], sentences={"en": en, "de": de}, fingerprint="families-v1",
                                       source="planted", word_tokenizer="gold", dropped_long=0)

    def word_vectors(self, corpus, language, settings):
        vectors = SentenceVectors(corpus.sentences[language], seed=["en", "de"].index(language))
        centres = np.random.default_rng(9).normal(scale=20, size=(10, 16))
        noise = np.random.default_rng(10).normal(size=(len(vectors.words), 16))
        vectors._layers[1] = (centres[vectors.sentence_ids // 6] + 0.05 * noise).astype(np.float16)
        return vectors


def test_message_families_score_on_the_papers_calign_and_zero_controlled(tmp_path) -> None:
    """A family of sentences opening with one word is one context: the sentence test alone misses it."""
    import xlingbench.tasks.calign as calign_task
    import xlingbench.tasks.colap as colap_task

    inputs = FamilyRepresentations(Cache(tmp_path / "cache"))
    muse = tmp_path / "en-de.txt"
    muse.write_text("".join(f"e{k}_{i} g{k}_{i}\n" for k in range(60) for i in range(1, 12)) + "".join(f"open{f} auf{f}\n" for f in range(10)))
    result = calign_task.run(inputs, calign_task.Params(dictionary=str(muse), k=10, n_init=3, layers="1", min_types=5))
    assert result.metrics["calign_max"] > 50 and result.metrics["calign_controlled_max"] == 0.0
    assert dict(result.step_metrics["one_sentence_concepts_controlled"])[1] == 0.0
    assert dict(result.step_metrics["context_bound_concepts"])[1] == 100.0
    overlap = colap_task.run(inputs, colap_task.Params(k=10, n_init=3, layers="1"))
    assert overlap.metrics["colap_max"] > 50 and overlap.metrics["colap_controlled_max"] == 0.0


def test_planted_concepts_spanning_many_contexts_are_kept(planted_task, tmp_path) -> None:
    """Planted cross-lingual concepts draw their words from sentences that open in many ways: none is context-bound."""
    import xlingbench.tasks.calign as calign_task

    patch, corpus = planted_task
    muse = tmp_path / "en-de.txt"
    muse.write_text("".join(f"e{w[1:]} g{w[1:]}\n" for w in sorted({w for s in corpus.sentences["en"] for w in s})))
    result = calign_task.run(patch(calign_task), calign_task.Params(dictionary=str(muse), k=30, n_init=3, layers="1"))
    assert result.metrics["calign_controlled_max"] == result.metrics["calign_max"] == 100.0
    assert dict(result.step_metrics["context_bound_concepts"])[1] == 0.0


def test_normalise_is_resolved_by_architecture_and_recorded(planted_task) -> None:
    import xlingbench.tasks.colap as colap_task
    from xlingbench.tasks.latent_concepts import AUTO_NORMALISE

    inputs = planted_task[0](colap_task)
    result = colap_task.run(inputs, colap_task.Params(k=30, n_init=2, layers="1", normalise="zscore"))
    assert result.info["normalise"] == "zscore" and result.metrics["colap_controlled_max"] == 100.0
    assert colap_task.run(inputs, colap_task.Params(k=30, n_init=2, layers="1")).info["normalise"] == AUTO_NORMALISE["encoder"]
    assert {"top1_dim_variance", "top3_dim_variance"} <= set(result.step_metrics)
