"""fast_align as array code: identical links to a loop-by-loop EM written from the reference
program (github.com/clab/fast_align, src/fast_align.cc), recovery of planted alignments,
determinism, and a dictionary induced from PUD en-de whose frequent words translate right."""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from xlingbench.compute import fast_align
from xlingbench.compute.fast_align import Settings, align


# --- the reference, one target token and one source position at a time ---------------------

def ref_feature(i: int, j: int, m: int, n: int) -> float:
    """DiagonalAlignment::Feature(i, j, m, n): i a target position of m, j a source position of n
    (from exact integers, as xlingbench's, so that equally distant positions tie exactly)."""
    return -abs(j * m - i * n) / (n * m)


def ref_z(i: int, m: int, n: int, tension: float) -> float:
    split = i * n / m
    floor = int(split)
    ratio = math.exp(-tension / n)
    num_top = (n - floor) % 2**32  # unsigned in C
    z = 0.0
    if floor:
        z += math.exp(ref_feature(i, floor, m, n) * tension) * (1 - ratio ** floor) / (1 - ratio)
    if num_top:
        z += math.exp(ref_feature(i, floor + 1, m, n) * tension) * (1 - ratio ** num_top) / (1 - ratio)
    return z


def ref_series(a1: float, g1: float, r: float, d: float, n: int) -> float:
    g_np1 = g1 * r ** n
    a_n = d * (n - 1) + a1
    return (a_n * g_np1 - a1 * g1) / (r - 1) - d * (g_np1 - g1 * r) / (r - 1) ** 2


def ref_d_log_z(i: int, m: int, n: int, tension: float) -> float:
    z = ref_z(i, n, m, tension)  # sic: the reference passes the lengths swapped here
    floor = int(i * n / m)
    ratio, d = math.exp(-tension / n), -1.0 / n
    total = 0.0
    if n - floor:
        a1 = ref_feature(i, floor + 1, m, n)
        total += ref_series(a1, math.exp(a1 * tension), ratio, d, n - floor)
    if floor:
        a1 = ref_feature(i, floor, m, n)
        total += ref_series(a1, math.exp(a1 * tension), ratio, d, floor)
    return total / z


def ref_digamma(x: float) -> float:
    result = 0.0
    while x < 7:
        result -= 1 / x
        x += 1
    x -= 0.5
    xx = 1 / x
    xx2, xx4 = xx * xx, xx ** 4
    return result + math.log(x) + xx2 / 24 - 7 * xx4 / 960 + 31 * xx4 * xx2 / 8064 - 127 * xx4 * xx4 / 30720


def ref_fast_align(src: list[list[str]], tgt: list[list[str]], reverse: bool, s: Settings) -> tuple[set, float]:
    """fast_align -d -o -v [-r]: links as (sentence, source position, target position), and λ."""
    pairs = [(t, e) if reverse else (e, t) for e, t in zip(src, tgt)]
    null = object()
    counts: dict = {}
    for e, f in pairs:
        for word in [null, *e]:
            for fw in f:
                counts.setdefault(word, {})[fw] = 0.0
    n_tokens = sum(len(f) for _, f in pairs)
    shapes = Counter((len(f), len(e)) for e, f in pairs)
    table: dict | None = None
    tension = s.tension
    links: set = set()
    for it in range(s.iterations):
        final = it == s.iterations - 1
        emp = 0.0
        for k, (e, f) in enumerate(pairs):
            m, n = len(f), len(e)
            for j, fw in enumerate(f):
                probs = [(table[null][fw] if table else 1e-9) * s.p_null]
                az = ref_z(j + 1, m, n, tension) / (1 - s.p_null)
                for i in range(1, n + 1):
                    prior = math.exp(ref_feature(j + 1, i, m, n) * tension) / az
                    probs.append((table[e[i - 1]][fw] if table else 1e-9) * prior)
                if final:
                    best = 0
                    for i in range(1, n + 1):
                        if probs[i] > probs[best]:
                            best = i
                    if best:
                        links.add((k, j, best - 1) if reverse else (k, best - 1, j))
                    continue
                total = sum(probs)
                counts[null][fw] += probs[0] / total
                for i in range(1, n + 1):
                    counts[e[i - 1]][fw] += probs[i] / total
                    emp += ref_feature(j, i, m, n) * probs[i] / total
        if final:
            break
        if it > 0:
            for _ in range(8):
                model = sum(c * ref_d_log_z(j, m, n, tension) for (m, n), c in shapes.items() for j in range(1, m + 1))
                tension = min(max(tension + (emp / n_tokens - model / n_tokens) * 20.0, 0.1), 14.0)
        table = {}
        for word, row in counts.items():
            digamma_total = ref_digamma(sum(c + s.alpha for c in row.values()))
            table[word] = {fw: math.exp(ref_digamma(c + s.alpha) - digamma_total) for fw, c in row.items()}
            counts[word] = dict.fromkeys(row, 0.0)
    return links, tension


# --- corpora -----------------------------------------------------------------------------------

def random_corpus(n_sentences: int, seed: int) -> tuple[list[list[str]], list[list[str]]]:
    """Noisy translations: a word-for-word translation, locally reordered, some words dropped
    or inserted, lengths from 1 to 12 on both sides (target often longer than source)."""
    rng = np.random.default_rng(seed)
    src, tgt = [], []
    for _ in range(n_sentences):
        e = [f"e{w}" for w in rng.zipf(1.6, size=rng.integers(1, 9)) % 25]
        f = [f"f{w[1:]}" for w in e if rng.random() > 0.15]
        for _ in range(rng.integers(0, 4)):
            f.insert(int(rng.integers(0, len(f) + 1)), f"x{rng.integers(0, 6)}")
        if len(f) > 1 and rng.random() < 0.5:
            a = int(rng.integers(0, len(f) - 1))
            f[a], f[a + 1] = f[a + 1], f[a]
        src.append(e)
        tgt.append(f or ["x0"])
    return src, tgt


def as_set(links: np.ndarray) -> set[tuple[int, int, int]]:
    return set(map(tuple, links.tolist()))


# --- tests -------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1])
def test_links_and_tension_equal_a_loop_by_loop_fast_align(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    src, tgt = random_corpus(120, seed)
    monkeypatch.setattr(fast_align, "CHUNK_CELLS", 50)  # many chunks, tokens straddling none
    forward, reverse = align(src, tgt)
    for ours, is_reverse in ((forward, False), (reverse, True)):
        links, tension = ref_fast_align(src, tgt, is_reverse, Settings())
        assert as_set(ours.links) == links
        assert ours.tension == pytest.approx(tension, rel=1e-9, abs=1e-12)
        assert ours.tension != Settings().tension  # λ was fitted, so the fit was compared too


def test_other_settings_also_match_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    src, tgt = random_corpus(60, 2)
    settings = Settings(iterations=3, p_null=0.2, tension=1.5, alpha=0.5)
    forward, reverse = align(src, tgt, settings)
    assert as_set(forward.links) == ref_fast_align(src, tgt, False, settings)[0]
    assert as_set(reverse.links) == ref_fast_align(src, tgt, True, settings)[0]


def test_chunk_size_does_not_change_the_links(monkeypatch: pytest.MonkeyPatch) -> None:
    src, tgt = random_corpus(300, 3)
    whole = align(src, tgt)
    monkeypatch.setattr(fast_align, "CHUNK_CELLS", 97)
    chunked = align(src, tgt)
    for a, b in zip(whole, chunked):
        assert np.array_equal(a.links, b.links) and a.tension == pytest.approx(b.tension, rel=1e-12)


def planted_corpus(n_sentences: int, seed: int) -> tuple[list[list[str]], list[list[str]], list[set[tuple[int, int]]]]:
    """Word-for-word translations (distinct words per sentence) with one adjacent pair swapped
    in every other sentence: the true links of every sentence are known."""
    rng = np.random.default_rng(seed)
    src, tgt, truth = [], [], []
    for k in range(n_sentences):
        e = [f"w{w}" for w in rng.choice(60, size=rng.integers(3, 12), replace=False)]
        order = list(range(len(e)))
        if k % 2:
            a = int(rng.integers(0, len(e) - 1))
            order[a], order[a + 1] = order[a + 1], order[a]
        src.append(e)
        tgt.append([f"T{e[i][1:]}" for i in order])
        truth.append({(i, j) for j, i in enumerate(order)})
    return src, tgt, truth


def test_planted_alignment_is_recovered_in_both_directions() -> None:
    src, tgt, truth = planted_corpus(400, 0)
    planted = {(k, i, j) for k, links in enumerate(truth) for i, j in links}
    forward, reverse = align(src, tgt)
    assert as_set(forward.links) == planted
    assert as_set(reverse.links) == planted
    assert forward.links.dtype == np.int32 and np.array_equal(forward.links, np.unique(forward.links, axis=0))


def test_two_runs_give_identical_links() -> None:
    src, tgt = random_corpus(300, 4)
    first, second = align(src, tgt), align(src, tgt)
    for a, b in zip(first, second):
        assert np.array_equal(a.links, b.links) and a.tension == b.tension


def test_a_pair_with_an_empty_side_gets_no_link_and_changes_nothing_else() -> None:
    src, tgt = random_corpus(80, 5)
    without = align(src, tgt)
    with_empty = align(src[:40] + [[], ["e1"]] + src[40:], tgt[:40] + [["f1"], []] + tgt[40:])
    for a, b in zip(without, with_empty):
        shifted = a.links.copy()
        shifted[shifted[:, 0] >= 40, 0] += 2
        assert np.array_equal(shifted, b.links)


def test_bad_input_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="2 source sentences but 1 target"):
        align([["a"], ["b"]], [["x"]])
    for settings in (Settings(iterations=0), Settings(p_null=1.0), Settings(tension=0.0), Settings(alpha=-1.0)):
        with pytest.raises(ValueError):
            align([["a"]], [["x"]], settings)


def test_digamma_matches_the_reference_series_and_the_true_function() -> None:
    x = np.array([0.01, 0.5, 1.0, 3.7, 7.0, 42.0, 1e5])
    ours = fast_align._digamma(x)
    assert np.allclose(ours, [ref_digamma(v) for v in x], rtol=1e-14, atol=0)
    # the series is an approximation of ψ: check it against known values
    assert ours[2] == pytest.approx(-0.5772156649015329, abs=1e-9)
    assert ours[1] == pytest.approx(-1.9635100260214235, abs=1e-9)


# German translations that a correct en-de dictionary must rank first (checked by eye on PUD)
PUD_EN_DE = {"and": {"und"}, "the": {"der", "die", "das", "den"}, "is": {"ist"}, "with": {"mit"}, "for": {"für"},
             "he": {"er"}, "not": {"nicht"}, "also": {"auch"}, "it": {"es"}, "but": {"aber"}, "was": {"war", "wurde"}}


@pytest.mark.integration
def test_pud_en_de_dictionary_translates_frequent_words(shared_data, tmp_path) -> None:
    from xlingbench.inputs.alignment import induce_dictionary
    from xlingbench.inputs.cache import Cache

    src, tgt = ([line.split() for line in (shared_data / "pud" / f"pud.{lang}.tok").read_text(encoding="utf-8").splitlines()]
                for lang in ("en", "de"))
    induced = induce_dictionary(src, tgt, cache=Cache(tmp_path), corpus_fingerprint="pud", pair=("en", "de"))
    assert induced.aligner == f"fast_align-{fast_align.VERSION}" and induced.deterministic
    top = {w: induced.table[w][0][0] for w in PUD_EN_DE}
    assert all(top[w] in PUD_EN_DE[w] for w in PUD_EN_DE), top
