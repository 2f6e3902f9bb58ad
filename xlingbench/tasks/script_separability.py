"""Task 1 — script separability (Wen-Yi & Mimno 2023, section 4; docs/tasks.md, task 1).

How linearly separable is each token category from all the others in the input embeddings?
For each category with at least ``min_tokens`` tokens: category vs rest, balanced by undersampling,
L2 logistic regression (sklearn ``LogisticRegression()``'s objective), ``folds``-fold stratified
cross-validation without shuffling; the category's score is the mean fold accuracy. The headline
is the unweighted mean over categories. The computation, and why there are two solvers (``torch``
by default, ``sklearn`` for the published procedure step by step), is in
:mod:`xlingbench.compute.separability`; this module adapts it to the harness.

Intervals: mean fold accuracy ± 1.96 standard errors over folds (for the headline: over the
per-fold means across categories). The folds share training data, so this understates the
uncertainty; it is a yardstick for regression gating, not a confidence interval proper.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from xlingbench.core.errors import UserError
from xlingbench.core.task import Chart, Task, TaskMetadata, TaskResult
from xlingbench.compute.categories import label_vocabulary, unicode_versions
from xlingbench.compute.logreg import TOLERANCE
from xlingbench.compute.separability import Separability, separability


@dataclass
class Params:
    """Parameters of ``script_separability`` (``--set script_separability.<name>=<value>``)."""

    labels: Literal["paper", "script"] = "paper"  # labelling scheme: "paper" (published) or "script" (Unicode Script)
    seed: int = 150  # undersampling seed (the published code's random_state)
    min_tokens: int = 500  # categories with fewer tokens are not scored
    folds: int = 10  # stratified folds, not shuffled
    tokens: str = ""  # optional file: score only these tokens (one normalised token a line)
    solver: Literal["torch", "sklearn"] = "torch"  # "torch": all fits at once, to the optimum; "sklearn": the published fits one by one

    def validate(self) -> None:
        """Stratified k-fold needs two folds at least, and every scored category one token per fold."""
        if self.folds < 2:
            raise ValueError(f"folds={self.folds} must be at least 2")
        if self.min_tokens < self.folds:
            raise ValueError(f"min_tokens={self.min_tokens} must be at least folds={self.folds} (each fold needs a token of the category)")
        if self.tokens and not Path(self.tokens).is_file():
            raise ValueError(f"tokens={self.tokens!r} is not an existing file")


SOLVER_NOTES = {
    "torch": "torch: xlingbench.compute.logreg batched Newton-CG, all categories and folds at once, "
             f"converged to max|grad| <= {TOLERANCE:g} per training row",
    "sklearn": "sklearn: cross_val_score(LogisticRegression()) per category (lbfgs, max_iter 100, tol 1e-4)",
}


def normal_interval(values: np.ndarray) -> tuple[float, float]:
    """Mean ± 1.96 standard errors of ``values`` (see the module docstring for its limits)."""
    half = 1.96 * float(np.std(values, ddof=1)) / np.sqrt(len(values)) if len(values) > 1 else 0.0
    return float(np.mean(values)) - half, float(np.mean(values)) + half


def read_token_list(path: str) -> list[str]:
    """Token strings from ``path``, one a line (in the xlingbench's normalised ``▁`` form)."""
    file = Path(path)
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read the token list {file}: {err}.",
                        "Pass a UTF-8 text file with one token a line (tokens=<path>).") from err
    tokens = [line for line in lines if line]
    if not tokens:
        raise UserError(f"the token list {file} is empty.", "Put one token string a line in it.")
    return tokens


def restrict_to(vocab_tokens: list[str], wanted: list[str], source: str) -> np.ndarray:
    """Ids of the vocabulary tokens named in ``wanted`` (sorted); UserError when none match."""
    wanted_set = set(wanted)
    ids = np.array([i for i, tok in enumerate(vocab_tokens) if tok in wanted_set], dtype=np.int64)
    if len(ids) == 0:
        raise UserError(
            f"none of the {len(wanted_set)} tokens in {source} is in this model's vocabulary.",
            "Write tokens in the normalised form (word start as ▁, e.g. ▁water).",
        )
    return ids


def run(inputs, params: Params) -> TaskResult:
    """Adapter: labels and unit rows from ``inputs`` -> :func:`separability` -> TaskResult."""
    vocab = inputs.vocabulary
    labels = label_vocabulary(vocab.tokens, params.labels, vocab.special_ids, vocab.excluded_ids)
    listed = read_token_list(params.tokens) if params.tokens else None
    ids = restrict_to(vocab.tokens, listed, params.tokens) if listed else np.arange(len(vocab))
    found = separability(  # the rows of the matrix, in its own dtype: the probe normalises the rows it samples
        vocab.embeddings, labels[ids], ids=ids, seed=params.seed, min_tokens=params.min_tokens, folds=params.folds,
        solver=params.solver, device=inputs.device,
    )
    if not found.scores:
        raise UserError(
            f"no {params.labels} category of {inputs.model_id} has {params.min_tokens} or more tokens.",
            "Lower script_separability.min_tokens, or score a larger token list.",
        )
    fingerprints = {"tokens": hashlib.sha256("\n".join(listed).encode()).hexdigest()} if listed else {}
    info = {"labels": params.labels, **unicode_versions(), "tokens_scored": len(ids), "inputs": fingerprints,
            "unlabelled_tokens": int(sum(label is None for label in labels[ids])),
            "categories_below_min_tokens": found.too_small,
            "undersampling": "numpy RandomState(seed).choice, as imblearn RandomUnderSampler(random_state=seed)",
            "solver": SOLVER_NOTES[params.solver],
            "unconverged_fits": int(sum(found.unconverged.values()))}
    return _result(found, params, info)


def _result(found: Separability, params: Params, info: dict) -> TaskResult:
    """Metrics, intervals, table and plot of one scored vocabulary."""
    scores = found.scores
    metrics = {"accuracy": found.accuracy, "categories": float(len(scores))}
    intervals = {"accuracy": normal_interval(np.mean([s.fold_scores for s in scores], axis=0))}
    for s in scores:
        metrics[f"accuracy/{s.category}"] = s.accuracy
        metrics[f"tokens/{s.category}"] = float(s.tokens)
        intervals[f"accuracy/{s.category}"] = normal_interval(s.fold_scores)
    table = [
        {"category": s.category, "tokens": s.tokens, "accuracy": s.accuracy,
         "fold_std": float(np.std(s.fold_scores)), "fold_min": float(np.min(s.fold_scores)),
         "fold_max": float(np.max(s.fold_scores)), "unconverged_fits": found.unconverged[s.category]}
        for s in scores
    ]
    return TaskResult(task=TASK.metadata.name, params=asdict(params), metrics=metrics, intervals=intervals,
                      tables={"categories": table}, info=info)


TASK = Task(
    metadata=TaskMetadata(
        name="script_separability",
        description="Mean accuracy of linear probes separating each token category from the rest "
        "in the input embeddings (balanced, 10-fold CV).",
        reference="Wen-Yi & Mimno 2023, Hyperpolyglot LLMs, EMNLP (arXiv 2311.18034), section 4",
        main_score="accuracy",
        version="1",
        options=("labels", "seed"),
        charts=(Chart(name="accuracy_by_category", kind="bar", metric="accuracy", title="Category vs rest: mean fold accuracy",
                      xlabel="category", ylabel="accuracy"),),
        published={"xlm-roberta-xl": 0.9924, "mt5-xl": 0.9332},
    ),
    params=Params,
    run=run,
)
