"""Task 1's computation: how well a linear probe separates each token category from the rest.

For each category with at least ``min_tokens`` tokens: category vs rest, the larger side randomly
undersampled to the size of the smaller, L2 logistic regression as sklearn's
``LogisticRegression()`` defaults define it, ``folds``-fold stratified cross-validation without
shuffling; the category's score is the mean fold accuracy (METHODS.md, "Task 1").

Undersampling reproduces imblearn's ``RandomUnderSampler(random_state=seed)`` as the published
code used it (a fresh sampler per category): a ``numpy.random.RandomState(seed)`` draws
``choice(n_larger, n_smaller, replace=False)`` from the larger class; with equal sizes the
category's own class is the one drawn (imblearn treats the rest, label 0, as the minority). Rows
are ordered rest first, then the category (the side kept whole in token-id order, the drawn
side in draw order), as imblearn returns them — the order decides the folds.

Two solvers fit the same problems on the same rows and folds:

- ``sklearn`` is the published procedure step by step (``cross_val_score`` of
  ``LogisticRegression()``, lbfgs stopping at 100 iterations), so for the same rows and labels
  the numbers are the published script's;
- ``torch`` (:mod:`xlingbench.compute.logreg`) fits all categories and folds at once (on CPU or
  GPU) and converges to the optimum that lbfgs only approaches; on a loaded 2-core CPU it
  took 14-19x less time than ``sklearn`` on e5-small's whole vocabulary (10 s against 142-192 s,
  benchmarks/bench_separability.py). Accuracies can differ
  from ``sklearn`` where lbfgs stopped early: by 1e-4 on e5-small's Latin with 10 folds, 0.0026
  with 2 folds (a tightly converged sklearn agrees with torch there to 5e-6).
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from xlingbench.compute.logreg import Block, centred_block, fit_logistic, intercept_rows, scaled_block
from xlingbench.compute.rows import unit_norms, unit_rows
from xlingbench.core.progress import progress

SOLVERS = ("torch", "sklearn")


@dataclass(frozen=True)
class CategoryScore:
    """One category's cross-validated separability."""

    category: str
    tokens: int
    fold_scores: np.ndarray

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.fold_scores))


@dataclass(frozen=True)
class Separability:
    """Scores of the categories large enough to score, and what was left out."""

    scores: list[CategoryScore]  # largest category first
    too_small: dict[str, int]  # category -> tokens, for categories under min_tokens
    unconverged: dict[str, int]  # category -> fits that stopped at the solver's iteration limit

    @property
    def accuracy(self) -> float:
        """The headline: unweighted mean over the scored categories."""
        return float(np.mean([s.accuracy for s in self.scores]))


def undersample(is_category: np.ndarray, seed: int) -> np.ndarray:
    """Row indices of a balanced sample, as imblearn's RandomUnderSampler(random_state=seed)."""
    rng = np.random.RandomState(seed)
    rest, cat = np.flatnonzero(~is_category), np.flatnonzero(is_category)
    if len(cat) >= len(rest):  # ties: the category's side is drawn, as imblearn does
        cat = cat[rng.choice(len(cat), size=len(rest), replace=False)]
    else:
        rest = rest[rng.choice(len(rest), size=len(cat), replace=False)]
    return np.concatenate([rest, cat])


def category_separability(
    matrix: Any, ids: np.ndarray, is_category: np.ndarray, *, seed: int, folds: int
) -> tuple[np.ndarray, int]:
    """Fold accuracies of category-vs-rest by the published sklearn procedure, and its unconverged fits."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    rows = undersample(is_category, seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        scores = cross_val_score(
            LogisticRegression(), unit_rows(matrix, ids[rows]), is_category[rows].astype(int), cv=StratifiedKFold(folds)
        )
    return scores, sum(issubclass(w.category, ConvergenceWarning) for w in caught)


def stratified_folds(targets: np.ndarray, folds: int) -> np.ndarray:
    """The test fold of every row, as scikit-learn's ``StratifiedKFold(folds)`` (no shuffling)
    assigns them: classes in order of first appearance; each class's rows, in order, go to the
    folds in consecutive runs, a run's length being what dealing the class-sorted rows round robin
    gives that fold.

    Why not call scikit-learn: importing its model selection keeps 65-80 MB of libraries resident
    for the rest of the run, 5% of tasks 1-3's memory target, for these lines
    (tests/test_script_separability.py holds the two equal).

    >>> stratified_folds(np.array([0, 0, 0, 1, 1, 1, 1]), 3).tolist()
    [0, 1, 2, 0, 0, 1, 2]
    """
    _, first, inverse = np.unique(targets, return_index=True, return_inverse=True)
    encoded = np.argsort(np.argsort(first))[inverse.reshape(-1)]  # class ids by first appearance
    if (np.bincount(encoded) < folds).all():
        raise ValueError(f"folds={folds} cannot be greater than the number of rows of every class")
    dealt = np.sort(encoded)
    allocation = np.stack([np.bincount(dealt[f::folds], minlength=len(first)) for f in range(folds)])
    fold = np.empty(len(targets), dtype=np.int64)
    for k in range(len(first)):
        fold[encoded == k] = np.repeat(np.arange(folds), allocation[:, k])
    return fold


def fit_groups(sizes: Sequence[int], dim: int, row_bytes: int) -> list[list[int]]:
    """Consecutive categories fitted together, each group's working memory at most the largest
    category's: its rows (``row_bytes`` each) and its Gram decomposition (float64, twice).

    Why groups: fitting all categories at once held every category's rows together (1.6x the
    vocabulary in e5-small's paper labels) and, at an 8B model's width, 30 Gram bases of 128 MB.
    The problems are independent, so the grouping changes memory and time, never a number.

    >>> fit_groups([1000, 600, 300, 100], dim=2, row_bytes=12)
    [[0], [1, 2], [3]]
    """
    cost = [n * row_bytes + 16 * dim * dim for n in sizes]
    groups: list[list[int]] = []
    for i, bytes_needed in enumerate(cost):
        if groups and sum(cost[j] for j in groups[-1]) + bytes_needed <= max(cost):
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def batched_separability(
    matrix: Any, ids: np.ndarray, categories: Sequence[np.ndarray], *, seed: int, folds: int, device: str = "cpu"
) -> list[tuple[np.ndarray, int]]:
    """Fold accuracies and unconverged fits of each category, fitted group by group by the torch solver.

    The same balanced rows and folds as :func:`category_separability`; a fold's accuracy is the
    share of its test rows whose margin has the target's sign (sklearn predicts 1 for margin > 0).
    Rows ``ids`` of ``matrix`` are normalised as they are gathered, into the one float32 buffer per
    category that the fit reads (:func:`xlingbench.compute.logreg.centred_block`); rows of a bfloat16
    or float16 tensor are gathered as they are and normalised by the fit, a chunk per pass (:func:`_block`).
    """
    samples = [undersample(is_category, seed) for is_category in categories]
    return [score for group in fit_groups([len(rows) for rows in samples], matrix.shape[1], _row_bytes(matrix))
            for score in _fit_group([_block(matrix, ids, samples[i], categories[i], folds) for i in group], device)]


def _fit_group(blocks: list[Block], device: str) -> list[tuple[np.ndarray, int]]:
    """Fold accuracies and unconverged fits of one group; its rows are freed when it returns,
    before the next group's are gathered."""
    fit = fit_logistic(blocks, device=device)
    found = []
    for block, margins, converged in zip(blocks, fit.margins, fit.converged):
        right_on_test = ((margins > 0) == block.targets[:, None]) & ~block.train
        found.append((right_on_test.sum(0) / (~block.train).sum(0), int((~converged).sum())))
    return found


def _block(matrix: Any, ids: np.ndarray, rows: np.ndarray, is_category: np.ndarray, folds: int) -> Block:
    """One category's balanced rows, unit-normalised and centred in one float32 copy, and its folds;
    from a matrix narrower than float32, one copy in its own dtype that the fit normalises as it reads
    (:class:`xlingbench.compute.logreg.ScaledRows`: half the float32 copy's memory at bfloat16)."""
    targets = is_category[rows]
    train = stratified_folds(targets, folds)[:, None] != np.arange(folds)
    if _narrow(matrix):
        import torch

        raw = matrix[torch.from_numpy(np.ascontiguousarray(ids[rows]))].cpu()
        return scaled_block(raw, unit_norms(raw, np.arange(len(raw))), targets, train)  # norms of the copy: no second gather
    buffer = intercept_rows(len(rows), matrix.shape[1])
    unit_rows(matrix, ids[rows], out=buffer[:, :-1])
    return centred_block(buffer, targets, train)


def _narrow(matrix: Any) -> bool:
    """Whether ``matrix`` is a torch tensor of fewer than 4 bytes an element (bfloat16, float16)."""
    return not isinstance(matrix, np.ndarray) and matrix.element_size() < 4


def _row_bytes(matrix: Any) -> int:
    """Bytes a probe block holds per row of ``matrix``: the row in its own dtype and its norm when
    narrow (:func:`_block`), else the float32 row with the intercept."""
    width = matrix.shape[1]
    return matrix.element_size() * width + 4 if _narrow(matrix) else 4 * (width + 1)


def separability(
    matrix: Any, labels: np.ndarray, *, ids: np.ndarray | None = None, seed: int = 150, min_tokens: int = 500,
    folds: int = 10, solver: str = "torch", device: str = "cpu",
) -> Separability:
    """Score every category with >= ``min_tokens`` tokens; rows labelled None are left out.

    ``matrix``: embedding rows (a numpy array or torch tensor, any float dtype), L2-normalised here
    a chunk at a time; ``ids``: the rows scored (default all), ``labels`` one per scored row.

    >>> rows = np.array([[1, 0.1 * i] if i % 2 else [-1, 0.1 * i] for i in range(40)], dtype=np.float32)
    >>> labels = np.array(["A" if i % 2 else "B" for i in range(40)], dtype=object)
    >>> found = separability(rows, labels, min_tokens=20, folds=5)
    >>> [(s.category, s.tokens, s.accuracy) for s in found.scores]
    [('A', 20, 1.0), ('B', 20, 1.0)]
    """
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; known: {', '.join(SOLVERS)}")
    ids = np.arange(len(matrix)) if ids is None else np.asarray(ids, dtype=np.int64)
    if len(ids) != len(labels):
        raise ValueError(f"{len(ids)} rows but {len(labels)} labels")
    kept = np.array([label is not None for label in labels], dtype=bool)
    ids, labels = ids[kept], labels[kept].astype(str)
    names, label_ids, counts = np.unique(labels, return_inverse=True, return_counts=True)
    order = sorted(range(len(names)), key=lambda i: (-counts[i], names[i]))
    too_small = {str(names[i]): int(counts[i]) for i in order if counts[i] < min_tokens}
    scored = [(str(names[i]), int(counts[i])) for i in order if counts[i] >= min_tokens]
    masks = [label_ids == i for i in order if counts[i] >= min_tokens]
    if solver == "torch":
        fits = batched_separability(matrix, ids, masks, seed=seed, folds=folds, device=device)
    else:
        fits = [category_separability(matrix, ids, mask, seed=seed, folds=folds)
                for mask in progress(masks, desc="separability", total=len(masks), unit="category")]
    scores = [CategoryScore(name, count, fold_scores) for (name, count), (fold_scores, _) in zip(scored, fits)]
    return Separability(scores, too_small, {name: stuck for (name, _), (_, stuck) in zip(scored, fits)})
