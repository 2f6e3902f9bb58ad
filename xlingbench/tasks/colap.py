"""Task 5, COLAP: how many latent concepts, discovered on the sentences of several languages
mixed together, hold at least two languages in substantial shares, per layer (Mousi et al.
2024; docs/METHODS.md "Task 5").

Headline: ``colap_max``, the peak of the per-layer curve, for the same reason as CALIGN's (the
paper quotes per-layer curves by their high points and discusses where overlap falls off in the
last layers); ``colap_last``, ``colap_mean`` and ``colap_max_layer`` are logged beside it and
the curve itself is the step metric ``colap``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from xlingbench.core.errors import UserError
from xlingbench.core.progress import progress
from xlingbench.core.task import Task, TaskMetadata, TaskResult
from xlingbench.compute.concepts import (
    REFERENCE,
    ColapResult,
    ConceptParams,
    cap_occurrences,
    cluster_layer,
    colap,
    corpus_info,
    extract_vectors,
    layer_plot,
    layer_summary,
    load_corpus,
    parse_layers,
    vectors_key,
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


def run(inputs: "Representations", params: Params) -> TaskResult:
    """Concepts over all languages' word occurrences per layer, then COLAP."""
    from xlingbench.compute.kmeans import choose_k

    languages = _languages(params.languages)
    corpus = load_corpus(params.data, languages, params.sentences)
    vectors = extract_vectors(inputs, corpus, languages, params)
    # At most max_occurrences per word type of each language: the same string in two languages is two types.
    rows = {lang: cap_occurrences(vectors[lang].words, params.max_occurrences, params.seed) for lang in languages}
    words = [vectors[lang].words[r] for lang in languages for r in rows[lang].tolist()]
    occurrence_langs = np.concatenate([np.full(len(rows[lang]), lang) for lang in languages])
    n_types = len(set(zip(occurrence_langs.tolist(), words)))
    k, warning = choose_k(n_types, params.k)
    series, per_layer, samples = [], [], []
    layers = parse_layers(params.layers, vectors[languages[0]].num_layers)
    for layer in progress(layers, desc="colap: concepts per layer", total=len(layers), unit="layer"):
        labels = cluster_layer(inputs, [(vectors[lang], rows[lang]) for lang in languages], layer=layer, k=k,
                               seed=params.seed, vectors_key=vectors_key(corpus, params, languages))
        result = colap(labels, occurrence_langs, params.theta_o)
        series.append((layer, result.percentage))
        per_layer.append({"layer": layer, "colap": result.percentage, "n_overlapping": result.n_overlapping,
                          "n_concepts": result.n_concepts, "k": k})
        samples += _sample_rows(layer, result, labels, words, occurrence_langs, params.seed)
    label = "+".join(languages)
    return TaskResult(
        task="colap",
        params=asdict(params),
        metrics=layer_summary("colap", series),
        step_metrics={"colap": series},
        tables={"per_layer": per_layer, "overlapping_concepts": samples},
        plots=[layer_plot("colap", label, series)],
        info={
            "languages": languages, "corpus": corpus_info(corpus), "occurrence_cap": "word type per language",
            "k_requested": params.k, "k": k, "warnings": [warning] if warning else [],
            "occurrences": {lang: len(rows[lang]) for lang in languages}, "types": n_types,
            "vectors": {lang: vectors[lang].info for lang in languages},
        },
    )


def _languages(spec: str) -> list[str]:
    """Two or more distinct languages from "en,de,fr"."""
    languages = [lang.strip() for lang in spec.split(",") if lang.strip()]
    if len(set(languages)) < 2 or len(set(languages)) != len(languages):
        raise UserError(f"languages={spec!r}: COLAP needs two or more different languages.", "Use e.g. --set task.languages=en,de,fr.")
    return languages


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
        version="1",
        needs="hidden_states",
    ),
    params=Params,
    run=run,
)
