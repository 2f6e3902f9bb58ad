"""What CALIGN (task 4) and COLAP (task 5) share: their parameters, the vectors they cluster,
the per-layer loop's bookkeeping and their charts (Mousi et al. 2024; docs/tasks.md).

Not a task itself (no ``TASK``): the two task modules build on it so that a change to the
shared settings (occurrence cap, extraction, layers) is made once.
"""
from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Sequence

from xlingbench.compute.concepts import parse_layers
from xlingbench.compute.normalise import top_dimension_shares
from xlingbench.core.errors import UserError
from xlingbench.core.task import Chart
from xlingbench.inputs.representations import VECTOR_DTYPE, ExtractionSettings
from xlingbench.inputs.word_vectors import token_metrics

if TYPE_CHECKING:
    from xlingbench.inputs.parallel_data import ParallelCorpus

#: the paper both latent-concept tasks follow
REFERENCE = "Mousi et al. 2024, Exploring Alignment in Shared Cross-lingual Spaces (ACL), arXiv 2405.14535"
#: the run-wide options both tasks take
OPTIONS = ("data", "languages", "seed")


@dataclass
class ConceptParams:
    """Parameters tasks 4 and 5 share (``--set task.<name>=value``); defaults are the paper's."""

    data: str = "gettext"  # parallel data: "gettext" (offline), a directory, a TSV, or hf:<dataset id>@<revision>
    # use only the first N aligned sentences (0 = all). 1,000 keeps the offline default to minutes on a
    # 2-core CPU (K about 130 for CALIGN en-de); all of the offline catalogs give K = 600 and take hours there
    sentences: int = 1000
    languages: list[str] = field(default_factory=lambda: ["en", "de"])  # CALIGN: source,target; COLAP: two or more
    k: int = 600
    max_occurrences: int = 15
    aggregation: Literal["last", "first", "mean"] = "last"
    side: Literal["encoder", "decoder"] = "encoder"
    layers: str = "all"  # "all" or a comma list of layers, 0 = embedding output; only these are extracted
    last_layer: Literal["normed", "prenorm"] = "normed"  # the last layer after the final norm, or its input (docs/tasks.md)
    seed: int = 0
    n_init: int = 10  # K-means starts, the best inertia kept (scikit-learn's default, as published)
    max_length: int = 512  # subwords a window holds; capped at what the model reads (its positions, its tokenizer)
    batch_size: int = 16
    normalise: Literal["auto", "none", "zscore", "rogue"] = "auto"  # vectors for the controlled headline; auto: by architecture

    def validate(self) -> None:
        """Ranges every value must be in before a model loads."""
        for name in ("k", "max_occurrences", "max_length", "batch_size", "n_init"):
            if getattr(self, name) < (2 if name == "k" else 1):
                raise ValueError(f"{name}={getattr(self, name)} must be at least {2 if name == 'k' else 1}")
        if self.sentences < 0:
            raise ValueError(f"sentences={self.sentences} must be 0 (all) or a positive count")
        if len(set(self.languages)) != len(self.languages) or len(self.languages) < 2:
            raise ValueError(f"languages={','.join(self.languages)} must name two or more different languages")
        if self.layers.strip().lower() != "all":
            parse_layers(self.layers, 10**6)  # the form only; the model's depth is checked once it is known
        local = Path(self.data)  # a folder, a .tsv file or a file prefix (data/pud/pud: pud.<lang>.tok): there now, not after a model loaded
        if self.data != "gettext" and not self.data.startswith("hf:") and not local.exists() and not any(local.parent.glob(f"{glob.escape(local.name)}.*")):
            raise ValueError(f"data={self.data!r} is not a folder, a .tsv file or a file prefix (nothing named {local.name}.<language>.tok or .txt in {local.parent})")

    def extraction(self) -> ExtractionSettings:
        """The settings word vectors are extracted with."""
        return ExtractionSettings(self.aggregation, self.side, self.max_length, self.batch_size, self.layers, self.last_layer)


def layers_of(params: ConceptParams, num_layers: int) -> list[int]:
    """The layers to score, checked against the model's depth."""
    try:
        return parse_layers(params.layers, num_layers)
    except ValueError as err:
        raise UserError(f"{err}.", "Set --set TASK.layers=all or layers the model has.") from None


def vectors_identity(corpus: "ParallelCorpus", params: ConceptParams, languages: Sequence[str]) -> dict[str, Any]:
    """What determines the word vectors being clustered (the model is added by the cache), their
    entries' format included: vectors extracted under other rules are other vectors, and so are their concepts."""
    from xlingbench.inputs.word_vectors import FORMAT

    return {"corpus": corpus.fingerprint, "languages": list(languages), "vectors_format": FORMAT, "aggregation": params.aggregation,
            "side": params.side, "max_length": params.max_length, "dtype": VECTOR_DTYPE,
            **({"last_layer": params.last_layer} if params.last_layer != "normed" else {})}


def corpus_info(corpus: "ParallelCorpus") -> dict[str, Any]:
    """What a result records about its parallel data."""
    return {"source": corpus.source, "fingerprint": corpus.fingerprint, "word_tokenizer": corpus.word_tokenizer,
            "dropped_long": corpus.dropped_long, "n_sentences": len(next(iter(corpus.sentences.values()), []))}


def shrink_k(n_types: int, requested: int) -> tuple[int, str]:
    """K for ``n_types`` word types (one concept per 10 types at most), with the warning when shrunk."""
    from xlingbench.compute.kmeans import choose_k

    try:
        return choose_k(n_types, requested)
    except (ValueError, UserError) as err:
        raise UserError(f"{err}", "Use more parallel sentences (--set TASK.sentences=0 for all) or more languages.") from None


def layer_chart(name: str) -> Chart:
    """The per-layer curve of ``name`` (the step metric the task logs)."""
    return Chart(name=f"{name}_by_layer", kind="line", metric=name, title=f"{name.upper()} by layer",
                 xlabel="layer", ylabel=f"{name.upper()} (%)")


#: the diagnostic both tasks log per layer (step metric), drawn beside their curve
ONE_SENTENCE = "one_sentence_concepts"
CONTEXT_BOUND = "context_bound_concepts"  # share of the controlled clusters bound to one sentence or opening word
# (``context_bound_concepts_paper``: the same share among the paper's raw clusters)


def diagnostic_chart() -> Chart:
    """The per-layer share of concepts dominated by one sentence (or one parallel sentence pair)."""
    return Chart(name=f"{ONE_SENTENCE}_by_layer", kind="line", metric=ONE_SENTENCE,
                 title="Concepts made mostly of one sentence, by layer", xlabel="layer", ylabel="concepts (%)")


def variance_chart() -> Chart:
    """The per-layer share of the variance held by the top dimension (rogue dimensions show as a peak)."""
    return Chart(name="top1_dim_variance_by_layer", kind="line", metric="top1_dim_variance",
                 title="Variance held by the top dimension, by layer", xlabel="layer", ylabel="variance (%)")


def extraction_metrics(vectors: dict[str, Any], k_used: dict[str, int]) -> dict[str, float]:
    """What the run logs about its inputs per language: the K used, words lost to length limits,
    subwords per word read and the growth the spaced reading would bring (:func:`token_metrics`)."""
    metrics = {f"k_used/{lang}": float(k) for lang, k in k_used.items()}
    for lang, found in vectors.items():
        metrics[f"words_lost/{lang}"] = float(found.info.get("words_lost", 0))
        metrics[f"words_without_subwords/{lang}"] = float(found.info.get("words_without_subwords", 0))
        metrics.update(token_metrics(lang, found.info))
    return metrics


#: the normalisation ``normalise=auto`` takes, by the model's architecture (docs/tasks.md, "Vectors fit for
#: clustering", has the figures it was chosen from)
AUTO_NORMALISE = {"encoder": "none", "decoder": "zscore", "encoder-decoder": "none"}


def normalisation(params: ConceptParams, arch: str) -> str:
    """The normalisation of the controlled headline's vectors: the parameter, ``auto`` resolved by ``arch``."""
    return AUTO_NORMALISE.get(arch, "none") if params.normalise == "auto" else params.normalise


#: the per-layer share of the variance held by the top dimensions (step metrics), for these counts of dimensions
TOP_DIMENSIONS = (1, 3)
#: above this share of context-bound concepts at a headline's peak layer, the run warns
DOMINATED = 50.0


def variance_metrics(x: Any) -> dict[str, float]:
    """How much of a layer's variance its top dimensions hold (step metrics ``top<n>_dim_variance``)."""
    return {f"top{n}_dim_variance": share for n, share in top_dimension_shares(x, TOP_DIMENSIONS).items()}


def identity_warning(name: str, series: list[tuple[int, float]], dominated: list[tuple[int, float]]) -> list[str]:
    """One line when the peak layer of ``series`` (metric ``name``) is dominated by context: more
    than half of the concepts behind it are context-bound (``dominated``, the share per layer).
    Why context-bound and not one-sentence: a random causal decoder clusters families of
    sentences that open alike, where no single sentence holds half of a concept; the control
    leaves both kinds out, so the warning reads the same diagnostic."""
    if not series:
        return []
    layer, value = max(series, key=lambda lv: lv[1])
    share = dict(dominated)[layer]
    if not share > DOMINATED:
        return []
    return [f"{name}={value:.2f} peaks at layer {layer}, where {share:.0f}% of the concepts are context-bound (one sentence, "
            "or sentences opening with one word, hold most of their occurrences): there the paper's number measures context, "
            "not shared concepts (the controlled headline leaves them out)."]
