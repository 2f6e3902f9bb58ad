"""Task 2 — neighbour script count (Wen-Yi & Mimno 2023, section 5; docs/tasks.md, task 2).

How many token categories share a token's neighbourhood? For each query token: itself plus its
``neighbours`` (50) nearest other tokens by exact cosine similarity over the whole vocabulary,
and the number of distinct categories among those 51 rows (at least 1). A model that groups
tokens by language scores near 1 (XLM-R-XL 1.64); one whose neighbours cross scripts scores
higher (mT5-XL 7.61).

Queries: a seeded random sample of ``sample`` (1% as in the paper) of the candidate tokens, or
all of them with ``sample=1.0``. Under ``paper`` labels every token is a candidate and every
category counts, S, N and P included, as in the published code. Under ``script`` labels only
labelled tokens are queries, and unlabelled neighbours (no script-bearing character, special
tokens) are not counted: they still take a place among the 50.

Headline: mean count over queries; also the std (population, ddof 0) and a 95% percentile
bootstrap interval of the mean (``bootstrap`` resamples, seeded).
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from xlingbench.core.errors import UserError
from xlingbench.core.task import Chart, Task, TaskMetadata, TaskResult
from xlingbench.compute.categories import label_vocabulary, unicode_versions


@dataclass
class Params:
    """Parameters of ``neighbour_script_count`` (``--set neighbour_script_count.<name>=<value>``)."""

    labels: Literal["paper", "script"] = "paper"  # labelling scheme: "paper" (published) or "script" (Unicode Script)
    sample: float = 0.01  # share of candidate tokens used as queries; 1.0 = all
    seed: int = 150  # query sample and bootstrap seed
    neighbours: int = 50  # nearest other tokens per query (51 rows with the query)
    bootstrap: int = 1000  # bootstrap resamples for the interval of the mean

    def validate(self) -> None:
        """A share of the vocabulary, and at least one neighbour and one resample."""
        if not 0 < self.sample <= 1:
            raise ValueError(f"sample={self.sample} is not a share of the vocabulary in (0, 1], e.g. 0.01 or 1.0")
        if self.neighbours < 1 or self.bootstrap < 1:
            raise ValueError(f"neighbours={self.neighbours} and bootstrap={self.bootstrap} must both be 1 or more")


def sample_queries(candidates: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted ids of a seeded random ``fraction`` of ``candidates`` (all when fraction is 1)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"sample={fraction} is not a share of the vocabulary in (0, 1]")
    if fraction == 1:
        return np.sort(candidates)
    size = max(1, round(fraction * len(candidates)))
    return np.sort(np.random.default_rng(seed).choice(candidates, size=size, replace=False))


def category_counts(query_ids: np.ndarray, neighbour_ids: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Distinct labels among each query and its neighbours (None not counted; at least 1)."""
    codes = _label_codes(labels)
    rows = np.sort(np.concatenate([codes[query_ids][:, None], codes[neighbour_ids]], axis=1), axis=1)
    distinct = 1 + (rows[:, 1:] != rows[:, :-1]).sum(axis=1) - (rows[:, 0] < 0)
    return np.maximum(distinct, 1)


def _label_codes(labels: np.ndarray) -> np.ndarray:
    """Labels as integers, -1 for None, so rows can be compared as numbers."""
    index: dict[str, int] = {}
    return np.array([-1 if lab is None else index.setdefault(lab, len(index)) for lab in labels], dtype=np.int64)


def bootstrap_interval(values: np.ndarray, *, seed: int, resamples: int, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values``, in batches to bound memory."""
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    batch = max(1, 2_000_000 // max(1, len(values)))
    for start in range(0, resamples, batch):
        n = min(batch, resamples - start)
        means[start : start + n] = values[rng.integers(0, len(values), size=(n, len(values)))].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def run(inputs, params: Params) -> TaskResult:
    """Adapter: sample queries, neighbours (cached), counts, summary."""
    if inputs.vocabulary_size <= params.neighbours:  # known before the matrix is read and cached
        raise UserError(f"neighbours={params.neighbours}: {inputs.model_id} has only {inputs.vocabulary_size} tokens.",
                        "Set neighbour_script_count.neighbours below the vocabulary size.")
    vocab = inputs.vocabulary
    labels = label_vocabulary(vocab.tokens, params.labels, vocab.special_ids, vocab.excluded_ids)
    candidates = np.flatnonzero([label is not None for label in labels])
    queries = sample_queries(candidates, params.sample, params.seed)
    digest = hashlib.sha256(queries.tobytes()).hexdigest()[:16]
    counts = category_counts(queries, inputs.neighbours(queries, params.neighbours), labels)
    info = {"labels": params.labels, **unicode_versions(), "queries": len(queries),
            "candidates": len(candidates), "queries_sha256": digest,
            "unlabelled_tokens": int(len(labels) - len(candidates))}
    return _result(counts, params, info)


def _result(counts: np.ndarray, params: Params, info: dict) -> TaskResult:
    """Summary metrics, the count distribution as a table and a bar plot."""
    values, freq = np.unique(counts, return_counts=True)
    metrics = {"mean_count": float(counts.mean()), "std_count": float(counts.std()),
               "median_count": float(np.median(counts)), "queries": float(len(counts)),
               **{f"share/{int(v)}": float(n / len(counts)) for v, n in zip(values, freq)}}
    interval = bootstrap_interval(counts.astype(float), seed=params.seed, resamples=params.bootstrap)
    table = [{"categories": int(v), "queries": int(n), "share": float(n / len(counts))} for v, n in zip(values, freq)]
    return TaskResult(task=TASK.metadata.name, params=asdict(params), metrics=metrics,
                      intervals={"mean_count": interval}, tables={"distribution": table},
                      info=info)


TASK = Task(
    metadata=TaskMetadata(
        name="neighbour_script_count",
        description="Mean number of distinct token categories among a token and its 50 nearest "
        "neighbours (exact cosine, whole vocabulary).",
        reference="Wen-Yi & Mimno 2023, Hyperpolyglot LLMs, EMNLP (arXiv 2311.18034), section 5",
        main_score="mean_count",
        version="1",
        higher_is_better=None,
        options=("labels", "seed"),
        charts=(Chart(name="count_distribution", kind="bar", metric="share", title="Distinct categories among a token and its neighbours",
                      xlabel="distinct categories", ylabel="share of queries"),),
        published={"mt5-xl": 7.61, "xlm-roberta-xl": 1.64},
    ),
    params=Params,
    run=run,
)
