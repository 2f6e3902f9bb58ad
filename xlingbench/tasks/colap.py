"""Task 5, COLAP: how many latent concepts, discovered on the sentences of several languages
mixed together, hold at least two languages in substantial shares, per layer (Mousi et al.
2024; docs/tasks.md, task 5).

Headline: ``colap_max``, the peak of the per-layer curve, for the same reason as CALIGN's (the
paper quotes per-layer curves by their high points and discusses where overlap falls off in the
last layers); ``colap_last``, ``colap_mean`` and ``colap_max_layer`` are logged beside it and
the curve itself is the step metric ``colap``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from xlingbench.compute.concepts import ColapResult, cap_occurrences, colap, layer_summary, one_sentence_share
from xlingbench.core.progress import progress
from xlingbench.core.task import Task, TaskMetadata, TaskResult
from xlingbench.tasks.latent_concepts import (
    ONE_SENTENCE,
    OPTIONS,
    REFERENCE,
    ConceptParams,
    corpus_info,
    diagnostic_chart,
    extraction_metrics,
    layer_chart,
    layers_of,
    shrink_k,
    vectors_identity,
)

if TYPE_CHECKING:
    from xlingbench.inputs.representations import Representations

#: overlapping concepts shown per layer in the ``overlapping_concepts`` table
SAMPLE_CONCEPTS = 5
#: word types shown per language of a concept in that table
SAMPLE_WORDS = 15


@dataclass
class Params(ConceptParams):
    """COLAP parameters: the shared ones plus the overlap threshold."""

    theta_o: float = 0.3

    def validate(self) -> None:
        """COLAP's threshold on top of the shared ranges."""
        super().validate()
        if not 0 < self.theta_o <= 1:
            raise ValueError(f"theta_o={self.theta_o} must be a fraction in (0, 1], e.g. 0.3, not 30")


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
    series, diagnostic, per_layer, samples = [], [], [], []
    sentence_ids = np.concatenate([vectors[lang].sentence_ids[rows[lang]] for lang in languages])
    layers = layers_of(params, vectors[languages[0]].num_layers)
    for layer in progress(layers, desc=f"colap {'+'.join(languages)}: concepts per layer", total=len(layers), unit="layer"):
        labels = inputs.concepts([(vectors[lang], rows[lang]) for lang in languages], layer=layer, k=k,
                                 seed=params.seed, n_init=params.n_init, identity=vectors_identity(corpus, params, languages))
        result = colap(labels, occurrence_langs, params.theta_o)
        # parallel sentences share an id: a concept made of one sentence pair counts here
        dominated = one_sentence_share(labels, sentence_ids)
        series.append((layer, result.percentage))
        diagnostic.append((layer, dominated))
        per_layer.append({"layer": layer, "colap": result.percentage, "n_overlapping": result.n_overlapping,
                          "n_concepts": result.n_concepts, "k": k, ONE_SENTENCE: dominated})
        samples += _sample_rows(layer, result, labels, words, occurrence_langs, params.seed)
    return TaskResult(
        task="colap",
        params=asdict(params),
        metrics={**layer_summary("colap", series), **extraction_metrics(vectors, {"+".join(languages): k})},
        step_metrics={"colap": series, ONE_SENTENCE: diagnostic},
        tables={"per_layer": per_layer, "overlapping_concepts": samples},
        info={
            "inputs": {"corpus": corpus.fingerprint},
            "languages": languages, "corpus": corpus_info(corpus), "occurrence_cap": "word type per language",
            "k_requested": params.k, "k": k, "warnings": [warning] if warning else [],
            "occurrences": {lang: len(rows[lang]) for lang in languages}, "types": n_types,
            "vectors": {lang: vectors[lang].info for lang in languages},
        },
    )


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
        main_score="colap_max",
        units=dict.fromkeys(("colap_max", "colap_last", "colap_mean"), "percent"),
        version="2",
        options=OPTIONS,
        charts=(layer_chart("colap"), diagnostic_chart()),
    ),
    params=Params,
    run=run,
)
