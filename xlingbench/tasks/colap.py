"""Task 5, COLAP: how many latent concepts, discovered on the sentences of several languages
mixed together, hold at least two languages in substantial shares, per layer (Mousi et al.
2024; docs/tasks.md, task 5).

Two numbers per layer, as for CALIGN (tasks/calign.py): ``colap``, the paper's (raw vectors,
every concept), and ``colap_controlled``, the headline the leaderboard ranks by: vectors fit for
clustering (``normalise``), and an overlapping concept counts only when it is an overlap of
meaning: not bound to one sentence pair (a sentence and its translation overlap by
construction) nor to one family of parallel sentences that open with the same words (what a
random causal model encodes: a word's prefix) and holding words with their translations (``theta_t`` of one language's types
have a translation, induced from the corpus, among another's). Clusters that ignore language
overlap everywhere, so the paper's COLAP is high even for random weights. Each curve's peak is
its headline (``colap_max``, ``colap_controlled_max``), with ``_last``, ``_mean`` and
``_max_layer`` beside it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from xlingbench.compute.concepts import (
    ColapResult,
    bound_share,
    cap_occurrences,
    colap,
    context_bound,
    controlled_colap,
    layer_summary,
    one_sentence_share,
    opening_words,
)
from xlingbench.core.progress import progress
from xlingbench.core.task import Task, TaskMetadata, TaskResult
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
    from xlingbench.inputs.parallel_data import ParallelCorpus
    from xlingbench.inputs.representations import Representations

#: the headline: COLAP on vectors fit for clustering, context-bound concepts not counted (docs/tasks.md)
CONTROLLED = "colap_controlled"
#: T(w) per word for the controlled headline: the 10 best, as CALIGN's top_n
TRANSLATIONS = 10
#: overlapping concepts shown per layer in the ``overlapping_concepts`` table
SAMPLE_CONCEPTS = 5
#: word types shown per language of a concept in that table
SAMPLE_WORDS = 15


@dataclass
class Params(ConceptParams):
    """COLAP parameters: the shared ones plus the overlap threshold."""

    theta_o: float = 0.3
    theta_t: float = 0.5  # controlled headline: share of a language's types with a translation in the concept

    def validate(self) -> None:
        """COLAP's thresholds on top of the shared ranges."""
        super().validate()
        for name in ("theta_o", "theta_t"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name}={getattr(self, name)} must be a fraction in (0, 1], e.g. 0.3, not 30")


def run(inputs: "Representations", params: Params) -> TaskResult:
    """Concepts over all languages' word occurrences per layer, then COLAP."""
    languages = params.languages
    corpus = inputs.corpus(params.data, languages, params.sentences)
    vectors = {lang: inputs.word_vectors(corpus, lang, params.extraction()) for lang in languages}
    # At most max_occurrences per word type of each language: the same string in two languages is two types.
    rows = {lang: cap_occurrences(vectors[lang].words, params.max_occurrences, params.seed) for lang in languages}
    words = [vectors[lang].words[r] for lang in languages for r in rows[lang].tolist()]
    occurrence_langs = np.concatenate([np.full(len(rows[lang]), lang) for lang in languages])
    n_types = len(set(zip(occurrence_langs.tolist(), words)))
    k, warning = shrink_k(n_types, params.k)
    method = normalisation(params, inputs.source.arch)
    translations = _translations(inputs, corpus, languages)
    curves: dict[str, list[tuple[int, float]]] = {}
    per_layer, samples = [], []
    sentence_ids = np.concatenate([vectors[lang].sentence_ids[rows[lang]] for lang in languages])
    # a context is shared by a sentence's translations, as its id is: its opening word in every language
    openings = list(zip(*(opening_words(corpus.sentences[lang], sentence_ids) for lang in languages)))
    layers = layers_of(params, vectors[languages[0]].num_layers)
    for layer in progress(layers, desc=f"colap {'+'.join(languages)}: concepts per layer", total=len(layers), unit="layer"):
        def labels_of(normalise: str) -> np.ndarray:
            return inputs.concepts([(vectors[lang], rows[lang]) for lang in languages], layer=layer, k=k, seed=params.seed,
                                   n_init=params.n_init, identity=vectors_identity(corpus, params, languages), normalise=normalise)

        raw = labels_of("none")
        result = colap(raw, occurrence_langs, params.theta_o)
        normalised = raw if method == "none" else labels_of(method)
        bound = context_bound(normalised, sentence_ids, openings)
        paper_bound = bound if method == "none" else context_bound(raw, sentence_ids, openings)
        control = controlled_colap(normalised, occurrence_langs, bound, words, translations, params.theta_o, params.theta_t)
        # parallel sentences share an id: a concept made of one sentence pair is context-bound
        row = {"colap": result.percentage, CONTROLLED: control.percentage,
               ONE_SENTENCE: one_sentence_share(raw, sentence_ids),
               f"{ONE_SENTENCE}_controlled": one_sentence_share(normalised, sentence_ids),
               CONTEXT_BOUND: bound_share(bound, normalised), f"{CONTEXT_BOUND}_paper": bound_share(paper_bound, raw),
               **variance_metrics(np.concatenate([vectors[lang].layer(layer)[rows[lang]] for lang in languages]))}
        for name, value in row.items():
            curves.setdefault(name, []).append((layer, value))
        per_layer.append({"layer": layer, **row, "n_overlapping": result.n_overlapping, "n_concepts": result.n_concepts, "k": k})
        samples += _sample_rows(layer, result, raw, words, occurrence_langs, params.seed)
    warnings = [warning] if warning else []
    warnings += identity_warning("colap_max", curves["colap"], curves[f"{CONTEXT_BOUND}_paper"])
    warnings += identity_warning(f"{CONTROLLED}_max", curves[CONTROLLED], curves[CONTEXT_BOUND])
    return TaskResult(
        task="colap",
        params=asdict(params),
        metrics={**layer_summary("colap", curves["colap"]), **layer_summary(CONTROLLED, curves[CONTROLLED]),
                 **extraction_metrics(vectors, {"+".join(languages): k})},
        step_metrics=curves,
        tables={"per_layer": per_layer, "overlapping_concepts": samples},
        info={
            "inputs": {"corpus": corpus.fingerprint}, "dictionaries": "induced by fast_align per language pair, 10 best translations",
            "languages": languages, "corpus": corpus_info(corpus), "occurrence_cap": "word type per language",
            "k_requested": params.k, "k": k, "warnings": warnings, "normalise": method,
            "occurrences": {lang: len(rows[lang]) for lang in languages}, "types": n_types,
            "vectors": {lang: vectors[lang].info for lang in languages},
        },
    )


def _translations(inputs: "Representations", corpus: "ParallelCorpus", languages: list[str]) -> dict[tuple[str, str], dict[str, list[str]]]:
    """T(w) for every pair of the run's languages (first before second), induced from the corpus
    by the deterministic fast_align as CALIGN's (cached, shared with it)."""
    from xlingbench.compute.alignment import best_translations

    return {(a, b): best_translations(inputs.induced_dictionary(corpus, a, b).table, TRANSLATIONS)
            for i, a in enumerate(languages) for b in languages[i + 1:]}


def _sample_rows(
    layer: int, result: ColapResult, labels: np.ndarray, words: list[str], langs: np.ndarray, seed: int
) -> list[dict[str, Any]]:
    """A seeded sample of this layer's overlapping concepts: language shares and words by language."""
    picked = np.random.default_rng(seed).choice(len(result.overlapping), size=min(SAMPLE_CONCEPTS, len(result.overlapping)), replace=False)
    rows = []
    for cid in sorted(result.overlapping[i] for i in picked.tolist()):
        members = np.flatnonzero(labels == cid).tolist()
        by_lang: dict[str, set[str]] = {}
        for i in members:
            by_lang.setdefault(str(langs[i]), set()).add(words[i])
        rows.append({
            "layer": layer, "concept": cid, "occurrences": len(members),
            "shares": " ".join(f"{lang}:{share:.2f}" for lang, share in sorted(result.shares[cid].items())),
            "words": " | ".join(f"{lang}: {' '.join(sorted(ws)[:SAMPLE_WORDS])}" for lang, ws in sorted(by_lang.items())),
        })
    return rows


TASK = Task(
    metadata=TaskMetadata(
        name="colap",
        description="Percentage of latent concepts (K-means over the word vectors of several languages mixed) in which at least two languages each make up at least 30% of the occurrences, per layer.",
        reference=REFERENCE,
        main_score=f"{CONTROLLED}_max",
        units=dict.fromkeys((f"{name}_{stat}" for name in ("colap", CONTROLLED) for stat in ("max", "last", "mean")), "percent"),
        version="6",
        options=OPTIONS,
        charts=(layer_chart(CONTROLLED), layer_chart("colap"), diagnostic_chart(), variance_chart()),
    ),
    params=Params,
    run=run,
)
