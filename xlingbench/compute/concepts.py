"""Latent concepts (tasks 4-5): occurrence capping, concepts from cluster labels, CALIGN, COLAP.

Concepts are K-means clusters of word occurrences (Mousi et al. 2024, "Exploring Alignment in
Shared Cross-lingual Spaces"); a concept is the *set of word types* of its occurrences. The
metrics follow docs/tasks.md, not the published scripts, which (1) report K as the number of
aligned concepts, because every source concept gets an entry whether or not it aligned, (2) test
concept sizes one-sided (source/target > 0.6 lets a tiny target match a large source) and with
strict inequalities where the paper says "at least", and (3) for COLAP compare a string with an
integer (no Python 3 run) and take the threshold as a percentage. Here: CALIGN counts only source
concepts aligned to at least one target concept, sizes are compared as min/max >= size_ratio,
thresholds are fractions with ">=" and the minimum size is "more than min_types".

Everything here is pure: arrays and sets in, numbers out (what the tests call). The steps that
read the model or the cache are methods of :class:`xlingbench.inputs.representations.Representations`.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Hashable, Sequence

import numpy as np


#: the paper both latent-concept tasks follow
REFERENCE = "Mousi et al. 2024, Exploring Alignment in Shared Cross-lingual Spaces (ACL), arXiv 2405.14535"



@dataclass
class CalignResult:
    """CALIGN of one layer: percentage of source concepts aligned to >= 1 target concept."""

    percentage: float
    n_aligned: int
    n_source_concepts: int
    #: aligned source concept id -> the target concept ids it is aligned to (sorted)
    alignments: dict[int, list[int]] = field(default_factory=dict)


@dataclass
class ColapResult:
    """COLAP of one layer: percentage of concepts where >= 2 languages each hold >= theta_o."""

    percentage: float
    n_overlapping: int
    n_concepts: int
    overlapping: list[int] = field(default_factory=list)
    #: concept id -> language -> share of the concept's token occurrences
    shares: dict[int, dict[str, float]] = field(default_factory=dict)



def calign(
    src_concepts: dict[int, set[str]],
    tgt_concepts: dict[int, set[str]],
    translations: dict[str, list[str]],
    theta_a: float = 0.8,
    min_types: int = 5,
    size_ratio: float = 0.6,
    size_units: tuple[float, float] = (1.0, 1.0),
) -> CalignResult:
    """CALIGN of source concepts against target concepts with dictionary ``translations`` (T(w)).

    Cs is aligned to Ct when: |{w in Cs : T(w) meets Ct}| / |Cs| >= theta_a, |Cs| > min_types,
    and min(|Cs|, |Ct|) / max(|Cs|, |Ct|) >= size_ratio (two-sided). Sizes count word types, in
    ``size_units`` (source, target) of types when the sizes are compared (the paper's: 1 type each).
    """
    _check_fraction("theta_a", theta_a, allow_zero=False)
    _check_fraction("size_ratio", size_ratio, allow_zero=True)
    concepts_of = _concepts_of_words(tgt_concepts)
    alignments: dict[int, list[int]] = {}
    for sid, words in src_concepts.items():
        if len(words) <= min_types:
            continue
        hits = Counter(tid for w in words for tid in _target_concepts(w, translations, concepts_of))
        matched = [
            tid for tid, n in hits.items()
            if n / len(words) >= theta_a and _sizes_close(len(words) / size_units[0], len(tgt_concepts[tid]) / size_units[1], size_ratio)
        ]
        if matched:
            alignments[sid] = sorted(matched)
    n_source = len(src_concepts)
    return CalignResult(_percent(len(alignments), n_source), len(alignments), n_source, alignments)


def _target_concepts(word: str, translations: dict[str, list[str]], concepts_of: dict[str, set[int]]) -> set[int]:
    """Target concepts holding at least one translation of ``word`` (each counted once per word)."""
    return {tid for t in translations.get(word, ()) for tid in concepts_of.get(t, ())}


def _concepts_of_words(concepts: dict[int, set[str]]) -> dict[str, set[int]]:
    """Word type -> the concepts it belongs to (a type's occurrences can fall in several)."""
    index: dict[str, set[int]] = {}
    for cid, words in concepts.items():
        for w in words:
            index.setdefault(w, set()).add(cid)
    return index


def _sizes_close(a: float, b: float, size_ratio: float) -> bool:
    """Whether two concept sizes differ by at most (1 - size_ratio), judged from the larger."""
    return min(a, b) / max(a, b) >= size_ratio


def colap(concept_labels: Sequence[int] | np.ndarray, languages_of_occurrences: Sequence[str] | np.ndarray, theta_o: float = 0.3) -> ColapResult:
    """COLAP: percentage of concepts in which at least two languages each make up at least
    ``theta_o`` of the concept's token occurrences (occurrence i is in concept_labels[i])."""
    _check_fraction("theta_o", theta_o, allow_zero=False)
    labels = np.asarray(concept_labels)
    if len(labels) != len(languages_of_occurrences):
        raise ValueError("concept_labels and languages_of_occurrences differ in length")
    concept_ids, concept_idx = np.unique(labels, return_inverse=True)
    languages, language_idx = np.unique(np.asarray(languages_of_occurrences, dtype=str), return_inverse=True)
    counts = np.zeros((len(concept_ids), len(languages)), dtype=np.int64)
    np.add.at(counts, (concept_idx, language_idx), 1)
    shares = counts / counts.sum(1, keepdims=True)
    overlaps = (shares >= theta_o).sum(1) >= 2
    overlapping = [int(c) for c in concept_ids[overlaps]]
    return ColapResult(
        percentage=_percent(len(overlapping), len(concept_ids)),
        n_overlapping=len(overlapping),
        n_concepts=len(concept_ids),
        overlapping=overlapping,
        shares={int(c): {str(lang): float(s) for lang, s in zip(languages, row) if s > 0} for c, row in zip(concept_ids, shares)},
    )


def concepts_from_labels(labels: Sequence[int] | np.ndarray, words: Sequence[str]) -> dict[int, set[str]]:
    """Concept id -> the set of word types of its occurrences (occurrence i is ``words[i]``)."""
    concepts: dict[int, set[str]] = {}
    for label, word in zip(np.asarray(labels).tolist(), words):
        concepts.setdefault(label, set()).add(word)
    return concepts


def cap_occurrences(keys: Sequence[Hashable], max_per_key: int, seed: int) -> np.ndarray:
    """Indices (ascending) of at most ``max_per_key`` occurrences of each key, chosen at random
    with ``seed``: a frequent word (or word pair) must not fill the concepts by itself."""
    if max_per_key < 1:
        raise ValueError(f"max_occurrences={max_per_key} keeps nothing: it must be 1 or more")
    seen: Counter[Hashable] = Counter()
    kept = []
    for index in np.random.default_rng(seed).permutation(len(keys)).tolist():
        if seen[keys[index]] < max_per_key:
            seen[keys[index]] += 1
            kept.append(index)
    return np.sort(np.asarray(kept, dtype=np.int64))


def cap_aligned_pairs(
    links: np.ndarray, src_sents: Sequence[Sequence[str]], tgt_sents: Sequence[Sequence[str]], max_per_pair: int, seed: int
) -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
    """(sentence, position) of the source and of the target words kept when at most
    ``max_per_pair`` links of each aligned word pair are kept; ``links`` rows are
    (sentence, source position, target position). Unaligned words are left out."""
    pairs = [(src_sents[k][i], tgt_sents[k][j]) for k, i, j in links.tolist()]
    kept = links[cap_occurrences(pairs, max_per_pair, seed)].tolist()
    return {(k, i) for k, i, _ in kept}, {(k, j) for k, _, j in kept}


def rows_at(sentence_ids: np.ndarray, word_positions: np.ndarray, positions: set[tuple[int, int]]) -> np.ndarray:
    """Rows (ascending) of word vectors whose (sentence, word position) is in ``positions``."""
    keys = zip(np.asarray(sentence_ids).tolist(), np.asarray(word_positions).tolist())
    return np.asarray([row for row, key in enumerate(keys) if key in positions], dtype=np.int64)


def _check_fraction(name: str, value: float, *, allow_zero: bool) -> None:
    low_ok = value >= 0 if allow_zero else value > 0
    if not (low_ok and value <= 1):
        bound = "[0, 1]" if allow_zero else "(0, 1]"
        raise ValueError(f"{name}={value} is not a fraction in {bound} (write 0.8, not 80)")


def _percent(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else math.nan


def sentence_bound(labels: Sequence[int] | np.ndarray, sentence_ids: Sequence[int] | np.ndarray) -> set[int]:
    """Ids of the concepts in which one sentence contributes more than half of the occurrences.

    Sentence ids of parallel text are shared across languages, so for a multilingual concept
    this is one sentence *pair*. Such a concept is the words of a sentence that the model's
    context put together (causal attention puts a sentence's context into each of its words;
    a sentence-embedding model's last layer does the same), not a latent concept shared
    across the corpus.
    """
    labels, sentences = np.asarray(labels), np.asarray(sentence_ids)
    if len(labels) != len(sentences):
        raise ValueError("labels and sentence_ids differ in length")
    if len(labels) == 0:
        return set()
    concept_ids, concept_idx = np.unique(labels, return_inverse=True)
    pair_idx = np.unique(np.stack([concept_idx, sentences]), axis=1, return_inverse=True)[1].ravel()
    pair_counts = np.bincount(pair_idx)
    pair_concept = np.zeros(len(pair_counts), dtype=np.int64)
    pair_concept[pair_idx] = concept_idx
    largest = np.zeros(len(concept_ids), dtype=np.int64)
    np.maximum.at(largest, pair_concept, pair_counts)
    return {int(c) for c in concept_ids[largest * 2 > np.bincount(concept_idx)]}


def opening_words(sentences: Sequence[Sequence[str]], sentence_ids: Sequence[int] | np.ndarray) -> list[str]:
    """The first word, lowercased, of each occurrence's sentence (``sentences[k]`` is sentence id k)."""
    firsts = [words[0].lower() if len(words) else "" for words in sentences]
    return [firsts[k] for k in np.asarray(sentence_ids).tolist()]


def context_bound(
    labels: Sequence[int] | np.ndarray, sentence_ids: Sequence[int] | np.ndarray, openings: Sequence[Hashable],
) -> set[int]:
    """Ids of the concepts bound to one context: one sentence, or the sentences that open with
    one word (``openings[i]``, e.g. from :func:`opening_words`), hold more than half of the
    occurrences.

    Why the opening word: a causal model's vector of a word carries the words before it, so a
    random-weight decoder clusters a *family* of sentences that begin alike ("Count as Fraction
    of Rows", "... of Columns", ...) although no one sentence holds half of the cluster; 99% of
    its aligned concepts' occurrences open with one word, against 53% for e5-small's. Grouping
    by one opening word took the random decoder's controlled CALIGN to 0 on the offline catalogs
    where the first two or three words, or the pair's opening words in both languages, left it
    0.4-4.0 at layers 6-18 (docs/tasks.md has the figures). A concept shared across the corpus draws its words
    from many sentences that open in many ways and is kept.
    """
    if len(openings) != len(np.asarray(labels)):
        raise ValueError("labels and openings differ in length")
    codes: dict[Hashable, int] = {}
    groups = np.asarray([codes.setdefault(key, len(codes)) for key in openings], dtype=np.int64)
    return sentence_bound(labels, sentence_ids) | sentence_bound(labels, groups)


def bound_share(bound: set[int], labels: Sequence[int] | np.ndarray) -> float:
    """Percentage of the concepts of ``labels`` that are in ``bound`` (e.g. :func:`context_bound`'s
    set, computed once per layer for the controlled headline and reused for its diagnostic)."""
    return _percent(len(bound), len(np.unique(np.asarray(labels))))


def one_sentence_share(labels: Sequence[int] | np.ndarray, sentence_ids: Sequence[int] | np.ndarray) -> float:
    """Percentage of concepts that are :func:`sentence_bound` (the per-layer diagnostic). A high
    value means the layer's concepts are mostly single sentences: the paper's CALIGN/COLAP count
    them, the controlled numbers (:func:`controlled_calign`, :func:`controlled_colap`) do not."""
    return bound_share(sentence_bound(labels, sentence_ids), labels)


def controlled_calign(
    src_concepts: dict[int, set[str]], tgt_concepts: dict[int, set[str]], src_bound: set[int], tgt_bound: set[int],
    translations: dict[str, list[str]], theta_a: float = 0.8, min_types: int = 5, size_ratio: float = 0.6,
) -> CalignResult:
    """CALIGN with sentence-bound concepts left out of both sides, as a percentage of *all* source
    concepts: a sentence-bound source concept never counts as aligned, and no source concept
    counts as aligned through a sentence-bound target concept (its translation's sentence).

    Concept sizes are compared in units of each language's mean concept size (the paper compares
    raw type counts). Why: K is shared, so a language with more word types on the same text has
    larger concepts throughout (German has 1.6 times English's types on the offline catalogs:
    compounds, inflection), and the paper's test then rejects true pairs ("Albanian, Armenian..."
    29 types against "Albanisch, Armenisch..." 61) while still rejecting the matches into giant
    clusters it exists for (docs/tasks.md has the figures)."""
    kept_src = {cid: words for cid, words in src_concepts.items() if cid not in src_bound}
    kept_tgt = {cid: words for cid, words in tgt_concepts.items() if cid not in tgt_bound}
    units = (mean_size(src_concepts), mean_size(tgt_concepts))
    result = calign(kept_src, kept_tgt, translations, theta_a, min_types, size_ratio, units)
    return CalignResult(_percent(result.n_aligned, len(src_concepts)), result.n_aligned, len(src_concepts), result.alignments)


def mean_size(concepts: dict[int, set[str]]) -> float:
    """Mean number of word types of a language's concepts (1 when there are none)."""
    return sum(map(len, concepts.values())) / len(concepts) if concepts else 1.0


def controlled_colap(
    concept_labels: Sequence[int] | np.ndarray, languages_of_occurrences: Sequence[str] | np.ndarray, bound: set[int],
    words: Sequence[str], translations: dict[tuple[str, str], dict[str, list[str]]], theta_o: float = 0.3, theta_t: float = 0.5,
) -> ColapResult:
    """COLAP counting only overlaps of meaning, as a percentage of all concepts: an overlapping
    concept counts when it is not in ``bound``, the :func:`context_bound` concepts (one sentence
    pair's words overlap by construction; the caller keys a family of sentences by, e.g., the
    opening words of its sentence in every language, shared by the translations as a sentence id
    is, and reuses the set for its diagnostic) and, for some two of its
    languages a, b that each hold >= ``theta_o``, at least
    ``theta_t`` of its a word types have a translation (``translations[a, b]``, T(w)) among its b
    word types. Why the second condition: clusters that ignore language (random vectors) mix
    languages evenly and overlap everywhere; only shared concepts hold words with their translations."""
    _check_fraction("theta_t", theta_t, allow_zero=False)
    result = colap(concept_labels, languages_of_occurrences, theta_o)
    labels, langs = np.asarray(concept_labels).tolist(), np.asarray(languages_of_occurrences, dtype=str).tolist()
    types: dict[int, dict[str, set[str]]] = {}
    for label, lang, word in zip(labels, langs, words):
        types.setdefault(label, {}).setdefault(lang, set()).add(word)
    kept = [cid for cid in result.overlapping if cid not in bound and
            _translated_overlap(types[cid], [lang for lang, share in result.shares[cid].items() if share >= theta_o],
                                translations, theta_t)]
    return ColapResult(_percent(len(kept), result.n_concepts), len(kept), result.n_concepts, kept,
                       {cid: result.shares[cid] for cid in kept})


def _translated_overlap(
    types: dict[str, set[str]], languages: list[str], translations: dict[tuple[str, str], dict[str, list[str]]], theta_t: float,
) -> bool:
    """Whether, for some dictionary pair (a, b) of ``languages``, >= theta_t of the a types have a translation among the b types."""
    for (a, b), table in translations.items():
        if a in languages and b in languages:
            hits = sum(1 for w in types[a] if any(t in types[b] for t in table.get(w, ())))
            if hits >= theta_t * len(types[a]):
                return True
    return False


# --- per-layer series ---------------------------------------------------------------------------


def parse_layers(spec: str, num_layers: int) -> list[int]:
    """Layers named by ``spec`` ("all" or a comma list of 0..L, 0 = embedding output)."""
    if spec.strip().lower() == "all":
        return list(range(num_layers))
    try:
        layers = sorted({int(part) for part in spec.split(",") if part.strip()})
    except ValueError:
        raise ValueError(f"layers={spec!r} is not 'all' or a comma list of integers, e.g. 0,6,12") from None
    outside = [layer for layer in layers if not 0 <= layer < num_layers]
    if outside or not layers:
        raise ValueError(f"layers={spec!r}: the model has layers 0..{num_layers - 1}; use layers in that range, or 'all'")
    return layers


def layer_summary(name: str, series: list[tuple[int, float]]) -> dict[str, float]:
    """Headline numbers of a per-layer series: the peak (and its layer), the last layer, the mean."""
    layers, values = zip(*series)
    best = int(np.argmax(values))
    return {
        f"{name}_max": float(values[best]),
        f"{name}_max_layer": float(layers[best]),
        f"{name}_last": float(values[-1]),
        f"{name}_mean": float(np.mean(values)),
    }
