"""Task 4, CALIGN: how many latent concepts of language s have a translation-equivalent concept
in language t, per layer (Mousi et al. 2024; docs/tasks.md, task 4).

Two numbers per layer. ``calign``, the paper's: K-means on the raw vectors, every concept
counted. ``calign_controlled``, the headline the leaderboard ranks by: K-means on vectors fit for
clustering (``normalise``; by default z-scores for decoders, raw for encoders) with
*context-bound* concepts (one sentence, or the sentences that open with one word, hold more than
half their occurrences) left out of both sides, as a share of all source concepts. Why: a
random-weight decoder scores 40-64% on the paper's CALIGN because causal attention makes a
sentence's words (or a family of sentences that begin alike) one cluster and the induced
dictionary aligns it with its translation's cluster; the control takes that away (docs/tasks.md
has the figures). Each curve's peak is its headline (``calign_max``, ``calign_controlled_max``;
the paper reports "up to 42%", the best layer), with ``_last``, ``_mean`` and ``_max_layer``
beside it. A run whose peak layer is mostly sentence-bound says so in a warning.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal

import numpy as np

from xlingbench.core.errors import UserError
from xlingbench.core.progress import progress
from xlingbench.core.task import Task, TaskMetadata, TaskResult
from xlingbench.compute.concepts import (
    CalignResult,
    bound_share,
    calign,
    cap_aligned_pairs,
    concepts_from_labels,
    context_bound,
    controlled_calign,
    layer_summary,
    one_sentence_share,
    opening_words,
    rows_at,
)
from xlingbench.tasks.latent_concepts import (
    CONTEXT_BOUND,
    ONE_SENTENCE,
    OPTIONS,
    REFERENCE,
    ConceptParams,
    corpus_info,
    diagnostic_chart,
    extraction_metrics,
    identity_warning,
    layer_chart,
    layers_of,
    normalisation,
    shrink_k,
    variance_chart,
    variance_metrics,
    vectors_identity,
)

if TYPE_CHECKING:
    from xlingbench.inputs.alignment import InducedDictionary
    from xlingbench.inputs.representations import Representations
    from xlingbench.inputs.parallel_data import ParallelCorpus
    from xlingbench.inputs.word_vectors import WordVectors

#: the headline: CALIGN on vectors fit for clustering, context-bound concepts left out (docs/tasks.md)
CONTROLLED = "calign_controlled"
#: below this share of source word types with a translation, the run warns (CALIGN is then low by construction)
MIN_COVERAGE = 0.5
#: aligned concepts shown per layer in the ``aligned_concepts`` table
SAMPLE_CONCEPTS = 5
#: word types shown per concept in that table
SAMPLE_WORDS = 30


@dataclass
class Params(ConceptParams):
    """CALIGN parameters: the shared ones plus the alignment conditions."""

    dictionary: str = "induced"  # "induced" (word alignment of the same data) or a MUSE / lexical-table file
    match_case: bool = True  # false: words and translations compared in lowercase (for lowercase dictionaries)
    aligner: Literal["fast_align", "eflomal"] = "fast_align"  # for "induced": fast_align (deterministic) or eflomal (unseeded, [align] extra)
    theta_a: float = 0.8
    top_n: int = 10
    min_types: int = 5
    size_ratio: float = 0.6

    def validate(self) -> None:
        """CALIGN's own ranges on top of the shared ones; a dictionary file must exist now, not after tasks 1-3."""
        super().validate()
        if len(self.languages) != 2:
            raise ValueError(f"languages={','.join(self.languages)}: CALIGN takes exactly two languages, source then target")
        if self.top_n < 1:
            raise ValueError(f"top_n={self.top_n} gives no translations; it must be 1 or more")
        if not 0 < self.theta_a <= 1 or not 0 <= self.size_ratio <= 1:
            raise ValueError(f"theta_a={self.theta_a} must be in (0, 1] and size_ratio={self.size_ratio} in [0, 1] (fractions, not percentages)")
        if self.dictionary != "induced" and not Path(self.dictionary).is_file():
            raise ValueError(f"dictionary={self.dictionary!r} is neither 'induced' nor an existing MUSE or lexical-table file")
        if self.dictionary != "induced":  # read now: an empty or one-column file is refused before any model loads
            _from_file(Path(self.dictionary), self.top_n, "-".join(self.languages), self.match_case)


@dataclass
class _Dictionary:
    """T(w) for the run and what the result records about where it came from."""

    translations: dict[str, list[str]]
    info: dict[str, Any]
    rows: list[dict[str, Any]] | None = None  # the induced table, saved as a run artifact


def run(inputs: "Representations", params: Params) -> TaskResult:
    """Concepts per language and layer, then CALIGN of source against target concepts."""
    source, target = params.languages
    corpus = inputs.corpus(params.data, [source, target], params.sentences)
    # the links cap occurrences per aligned word pair whatever the dictionary's source (one rule)
    aligned = inputs.induced_dictionary(corpus, source, target, params.aligner)
    dictionary = _dictionary(aligned, params, source, target)
    vectors = {lang: inputs.word_vectors(corpus, lang, params.extraction()) for lang in (source, target)}
    rows = _kept_rows(params, corpus, aligned.links, vectors, source, target)
    fold = (lambda w: w) if params.match_case else str.lower
    words = {lang: [fold(vectors[lang].words[r]) for r in rows[lang].tolist()] for lang in (source, target)}
    coverage = _coverage(set(words[source]), set(words[target]), dictionary.translations, source, target)
    k, warnings = _shared_k([len(set(words[lang])) for lang in (source, target)], params.k)
    warnings += _dictionary_warnings(dictionary.info, coverage, source)
    method = normalisation(params, inputs.source.arch)
    curves: dict[str, list[tuple[int, float]]] = {}
    per_layer, samples = [], []
    layers = layers_of(params, vectors[source].num_layers)
    for layer in progress(layers, desc=f"calign {source}-{target}: concepts per layer", total=len(layers), unit="layer"):
        def labels_of(lang: str, normalise: str) -> np.ndarray:
            return inputs.concepts([(vectors[lang], rows[lang])], layer=layer, k=k, seed=params.seed, n_init=params.n_init,
                                   identity=vectors_identity(corpus, params, [lang]), normalise=normalise)

        row, result, concepts = _score_layer(labels_of, method, words, vectors, rows, corpus.sentences, dictionary.translations, params)
        row.update(variance_metrics(vectors[source].layer(layer)[rows[source]]))
        for name, value in row.items():
            curves.setdefault(name, []).append((layer, value))
        per_layer.append({"layer": layer, **row, "n_aligned": result.n_aligned, "n_source_concepts": result.n_source_concepts, "k": k})
        samples += _sample_rows(layer, result, concepts[source], concepts[target], params.seed)
    series, controlled = curves["calign"], curves[CONTROLLED]
    warnings += identity_warning("calign_max", series, curves[f"{CONTEXT_BOUND}_paper"])
    warnings += identity_warning(f"{CONTROLLED}_max", controlled, curves[CONTEXT_BOUND])
    pair = f"{source}-{target}"
    tables = {"per_layer": per_layer, "aligned_concepts": samples}
    if dictionary.rows is not None:
        tables["dictionary"] = dictionary.rows
    metrics = {**layer_summary("calign", series), **layer_summary(CONTROLLED, controlled), "dictionary_coverage": coverage,
               **extraction_metrics(vectors, {source: k, target: k})}
    return TaskResult(
        task="calign",
        params=asdict(params),
        metrics=metrics,
        step_metrics=curves,
        tables=tables,
        info={
            "inputs": {"corpus": corpus.fingerprint, "dictionary": dictionary.info["sha256"]},
            "pair": pair, "corpus": corpus_info(corpus), "dictionary": {**dictionary.info, "coverage": coverage},
            "occurrence_cap": "aligned word pair", "alignment": {"aligner": aligned.aligner, "deterministic": aligned.deterministic,
                                                                 "key": aligned.fingerprint},
            "k_requested": params.k, "k": k, "warnings": warnings, "normalise": method,
            "occurrences": {lang: len(words[lang]) for lang in words}, "types": {lang: len(set(words[lang])) for lang in words},
            "vectors": {lang: vectors[lang].info for lang in vectors},
        },
    )


def _score_layer(
    labels_of: Callable[[str, str], np.ndarray], method: str, words: dict[str, list[str]], vectors: dict[str, "WordVectors"],
    rows: dict[str, np.ndarray], sentence_words: dict[str, list[list[str]]], translations: dict[str, list[str]], params: Params,
) -> tuple[dict[str, float], CalignResult, dict[str, dict[int, set[str]]]]:
    """One layer: the paper's CALIGN on raw vectors and the controlled CALIGN on ``method``-normalised
    vectors with context-bound concepts (one sentence, or sentences opening with one word, hold most
    of the occurrences) left out (the same clusters when ``method`` is "none"), and the share of
    bound concepts behind each. Returns the layer's curve values, the paper's result and its
    concepts (for the sample table)."""
    source, target = params.languages
    raw = {lang: labels_of(lang, "none") for lang in (source, target)}
    normalised = raw if method == "none" else {lang: labels_of(lang, method) for lang in (source, target)}
    sentences = {lang: vectors[lang].sentence_ids[rows[lang]] for lang in (source, target)}
    concepts = {lang: concepts_from_labels(raw[lang], words[lang]) for lang in (source, target)}
    result = calign(concepts[source], concepts[target], translations, params.theta_a, params.min_types, params.size_ratio)
    openings = {lang: opening_words(sentence_words[lang], sentences[lang]) for lang in (source, target)}
    bound = {lang: context_bound(normalised[lang], sentences[lang], openings[lang]) for lang in (source, target)}
    paper_bound = bound[source] if method == "none" else context_bound(raw[source], sentences[source], openings[source])
    kept = {lang: concepts_from_labels(normalised[lang], words[lang]) for lang in (source, target)}
    control = controlled_calign(kept[source], kept[target], bound[source], bound[target], translations,
                                params.theta_a, params.min_types, params.size_ratio)
    row = {"calign": result.percentage, CONTROLLED: control.percentage,
           ONE_SENTENCE: one_sentence_share(raw[source], sentences[source]),
           f"{ONE_SENTENCE}_controlled": one_sentence_share(normalised[source], sentences[source]),
           CONTEXT_BOUND: bound_share(bound[source], normalised[source]),
           f"{CONTEXT_BOUND}_paper": bound_share(paper_bound, raw[source])}
    return row, result, concepts


def _dictionary(aligned: "InducedDictionary", params: Params, source: str, target: str) -> _Dictionary:
    """T(w): the ``top_n`` best translations induced by word alignment of the corpus, or read from a file."""
    from xlingbench.compute.alignment import best_translations
    from xlingbench.inputs.dictionaries import Dictionary, fold_case

    if params.dictionary != "induced":
        return _from_file(Path(params.dictionary), params.top_n, f"{source}-{target}", params.match_case)
    table = aligned.table if params.match_case else fold_case(aligned.table)
    translations = best_translations(table, params.top_n)
    rows = [{"source": s, "target": t, "probability": p} for s, kept in translations.items() for t, p in table[s] if t in kept]
    info = {**Dictionary(f"{source}-{target}", translations, str(aligned.path)).record(), "kind": "induced",
            "aligner": aligned.aligner, "aligner_deterministic": aligned.deterministic,
            "symmetrisation": "grow-diag-final-and", "alignment_key": aligned.fingerprint}
    return _Dictionary(translations, info, rows=rows)


def _from_file(path: Path, top_n: int, pair: str, match_case: bool) -> _Dictionary:
    """A MUSE file (``src tgt`` a line: the first ``top_n`` of each word in file order) or a
    lexical table (``src -> tgt: Probability = p[, Count = n]``: the ``top_n`` most probable)."""
    from xlingbench.compute.alignment import best_translations
    from xlingbench.inputs.dictionaries import Dictionary, group, read_lexical_table, read_muse

    with path.open(encoding="utf-8", errors="replace") as lines:
        first = next((line for line in lines if line.strip()), "")
    if " -> " in first and ": Probability = " in first:
        kind, translations = "lexical_table", best_translations(read_lexical_table(path, match_case), top_n)
    else:
        kind, translations = "muse", {s: ts[:top_n] for s, ts in group(read_muse(path), match_case).items()}
    return _Dictionary(translations, {**Dictionary(pair, translations, str(path)).record(), "kind": kind})


def _dictionary_warnings(info: dict[str, Any], coverage: float, source: str) -> list[str]:
    """What a reader of the number must know about the dictionary."""
    warnings = []
    if coverage < MIN_COVERAGE:
        warnings.append(f"the dictionary covers only {coverage:.0%} of the {source} word types of the corpus: few concepts "
                        f"can reach theta_a, so CALIGN is low by construction (check the pair, tokenisation and match_case).")
    if info.get("aligner_deterministic") is False:
        warnings.append(f"the dictionary was induced by {info['aligner']}, which cannot be seeded: "
                        "a fresh cache may give other numbers (aligner=fast_align is deterministic).")
    return warnings


def _kept_rows(
    params: Params, corpus: "ParallelCorpus", links: np.ndarray, vectors: dict[str, "WordVectors"], source: str, target: str
) -> dict[str, np.ndarray]:
    """Rows of each language's word vectors kept by the occurrence cap: at most
    ``max_occurrences`` links per aligned word pair (docs/tasks.md), aligned words only."""
    src_pos, tgt_pos = cap_aligned_pairs(links, corpus.sentences[source], corpus.sentences[target],
                                         params.max_occurrences, params.seed)
    return {lang: rows_at(vectors[lang].sentence_ids, vectors[lang].word_positions, positions)
            for lang, positions in ((source, src_pos), (target, tgt_pos))}


def _coverage(src_types: set[str], tgt_types: set[str], translations: dict[str, list[str]], source: str, target: str) -> float:
    """Share of source word types with a translation among the target word types; none is an error."""
    covered = sum(1 for w in src_types if any(t in tgt_types for t in translations.get(w, ())))
    if covered == 0:
        raise UserError(f"The dictionary has no entry linking a {source} word of the corpus to a {target} word of it.",
                        f"Check that the dictionary is {source}->{target} (source first) and matches the data's tokenisation.")
    return covered / len(src_types)


def _shared_k(n_types: list[int], requested: int) -> tuple[int, list[str]]:
    """One K for both languages (concept sizes are compared, so both are cut alike): the
    smaller of :func:`xlingbench.compute.kmeans.choose_k` over the two languages."""
    chosen = [shrink_k(n, requested) for n in n_types]
    return min(k for k, _ in chosen), [w for _, w in chosen if w]


def _sample_rows(layer: int, result: CalignResult, src: dict[int, set[str]], tgt: dict[int, set[str]], seed: int) -> list[dict[str, Any]]:
    """A seeded sample of this layer's aligned concepts with their words, for reading by eye."""
    aligned = sorted(result.alignments)
    picked = np.random.default_rng(seed).choice(len(aligned), size=min(SAMPLE_CONCEPTS, len(aligned)), replace=False)
    rows = []
    for sid in sorted(aligned[i] for i in picked.tolist()):
        tid = result.alignments[sid][0]
        rows.append({"layer": layer, "source_concept": sid, "source_types": len(src[sid]),
                     "source_words": " ".join(sorted(src[sid])[:SAMPLE_WORDS]),
                     "target_concepts": " ".join(map(str, result.alignments[sid])), "target_types": len(tgt[tid]),
                     "target_words": " ".join(sorted(tgt[tid])[:SAMPLE_WORDS])})
    return rows


TASK = Task(
    metadata=TaskMetadata(
        name="calign",
        description="Percentage of source-language latent concepts (K-means over word vectors) aligned to a target-language concept through a translation dictionary, per layer.",
        reference=REFERENCE,
        main_score=f"{CONTROLLED}_max",
        units=dict.fromkeys((f"{name}_{stat}" for name in ("calign", CONTROLLED) for stat in ("max", "last", "mean")), "percent"),
        version="6",
        options=OPTIONS,
        charts=(layer_chart(CONTROLLED), layer_chart("calign"), diagnostic_chart(), variance_chart()),
    ),
    params=Params,
    run=run,
)
