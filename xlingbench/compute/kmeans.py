"""Seeded K-means on torch (CPU or GPU): k-means++ seeding and Lloyd iterations, bounded memory.

Why not scikit-learn: its k-means++ seeding runs point by point in Python-sized steps and takes
minutes at 200k word vectors and K = 600; here every seeding step is one matrix product on the
device, and Lloyd distances are computed in row chunks so memory stays at ``chunk x starts x K`` floats
whatever the number of points. The algorithm follows scikit-learn's ``KMeans(algorithm="lloyd")``
step for step (greedy k-means++ with ``2 + log K`` candidates, tolerance relative to the mean
feature variance, stop on unchanged labels, farthest points for empty clusters, 10 starts with
the best inertia kept), so the two agree in inertia from the same initial centroids. The starts
run batched: one distance product per step serves all of them, which reads the points once per
step instead of once per start. Results are deterministic for a seed on a given device (CPU and
GPU draw different random numbers).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from xlingbench.core.errors import UserError

if TYPE_CHECKING:
    import torch

#: K-means is shrunk so that a concept holds on average at least this many word types: twice
#: the "more than 5 types" a CALIGN source concept needs, so most concepts can be counted.
TYPES_PER_CONCEPT = 10
#: floats of the chunk x (starts x K) distance block held at once (64 MiB of float32)
_DISTANCE_BLOCK = 1 << 24
#: starts are batched only while a distance block still holds this many rows (fewer rows per
#: product would cost more in per-chunk overhead than batching saves)
_MIN_ROWS = 1024


@dataclass
class KMeansResult:
    """Cluster of each point, the centroids, and the sum of squared distances to them, for the
    best of the starts; ``start`` is its index and ``inertias`` the final inertia of every start
    (kept so that a run can log how much the seed alone moves the clustering)."""

    labels: np.ndarray  # (n,) int64
    centroids: np.ndarray  # (k, d) float32
    inertia: float
    n_iter: int
    converged: bool
    start: int = 0
    inertias: tuple[float, ...] = ()


def choose_k(n_types: int, requested: int = 600) -> tuple[int, str | None]:
    """K to use for ``n_types`` distinct word types, and a warning when it had to shrink.

    Rule: K = min(requested, n_types // TYPES_PER_CONCEPT), so concepts average at least 10
    types. Fewer than 2 * TYPES_PER_CONCEPT types cannot make two such concepts: a UserError.
    """
    if requested < 2:
        raise UserError(f"k={requested} is too small: concepts need at least 2 clusters.", "Set k to 2 or more (600 by default).")
    ceiling = n_types // TYPES_PER_CONCEPT
    if ceiling < 2:
        raise UserError(
            f"Only {n_types} word types: too few for latent concepts (at least {2 * TYPES_PER_CONCEPT} needed).",
            "Use more parallel sentences (--set task.data=...).",
        )
    if ceiling >= requested:
        return requested, None
    return ceiling, (
        f"k shrunk from {requested} to {ceiling}: {n_types} word types allow at most one concept "
        f"per {TYPES_PER_CONCEPT} types."
    )


def start_seeds(seed: int, n_init: int) -> list[int]:
    """The seed of each start, drawn as scikit-learn draws them: ``RandomState(seed).randint(
    2**31 - 1, size=n_init)``. Draws are sequential, so start ``i`` gets the same seed whatever
    ``n_init`` is: the first start of ten is the single start of ``n_init=1``."""
    return [int(s) for s in np.random.RandomState(seed).randint(np.iinfo(np.int32).max, size=n_init)]


def kmeans(
    x: np.ndarray,
    k: int,
    *,
    seed: int = 0,
    n_init: int = 10,
    max_iter: int = 300,
    tol: float = 1e-4,
    init: np.ndarray | None = None,
    device: str = "cpu",
) -> KMeansResult:
    """Cluster the rows of ``x`` (any float dtype; computed in float32) into ``k`` clusters.

    ``n_init`` starts (scikit-learn's default of 10: with one start the seed alone moves a
    CALIGN layer by several points), each from greedy k-means++ seeded by
    :func:`start_seeds`, run batched; the start of lowest inertia is kept (the first on a tie).
    ``init`` gives starting centroids (k x d) instead: then there is one start, as in
    scikit-learn. ``tol`` is relative, as in scikit-learn: a start stops when its summed squared
    centroid shift is at most ``tol`` times the mean per-feature variance, or when no label changes.
    """
    import torch

    points = torch.as_tensor(np.asarray(x), device=device).float()
    if not 1 <= k <= points.shape[0]:
        raise ValueError(f"k={k} must be between 1 and the number of points ({points.shape[0]})")
    if max_iter < 1 or n_init < 1:
        raise ValueError(f"max_iter={max_iter} and n_init={n_init} must be at least 1")
    sq_norms = (points * points).sum(1)
    tol_abs = float(points.var(0, unbiased=False).mean()) * tol
    if init is not None:
        groups = [torch.as_tensor(np.asarray(init), device=device).float()[None].clone()]
    else:
        seeds = start_seeds(seed, n_init)
        per_group = _starts_per_group(points.shape[0], k, n_init)
        groups = [_seed_group(points, k, seeds[i : i + per_group], sq_norms) for i in range(0, n_init, per_group)]
    runs = [run for centroids in groups for run in _lloyd(points, centroids, sq_norms, max_iter, tol_abs)]
    inertias = tuple(float(distances.double().sum()) for _, distances, _, _, _ in runs)
    best = int(np.argmin(inertias))
    labels, _, centroids, n_iter, converged = runs[best]
    return KMeansResult(labels=labels.cpu().numpy().astype(np.int64), centroids=centroids.cpu().numpy(),
                        inertia=inertias[best], n_iter=n_iter, converged=converged, start=best, inertias=inertias)


def _starts_per_group(n: int, k: int, n_init: int) -> int:
    """How many starts run batched at once: as many as keep both the k-means++ candidate block
    (starts x trials x n) and a Lloyd distance block of at least ``_MIN_ROWS`` rows
    (rows x starts x k) within ``_DISTANCE_BLOCK`` floats; at least one."""
    trials = 2 + int(math.log(k))
    return max(1, min(n_init, _DISTANCE_BLOCK // (trials * n), _DISTANCE_BLOCK // (_MIN_ROWS * k)))


def _seed_group(points: "torch.Tensor", k: int, seeds: list[int], sq_norms: "torch.Tensor") -> "torch.Tensor":
    """k-means++ centroids (starts x k x d) of the given start seeds, one generator each."""
    import torch

    generators = [torch.Generator(device=points.device).manual_seed(s) for s in seeds]
    return kmeans_plusplus(points, k, generators, sq_norms)


def kmeans_plusplus(
    points: "torch.Tensor", k: int, generators: "list[torch.Generator]", sq_norms: "torch.Tensor"
) -> "torch.Tensor":
    """Greedy k-means++ (Arthur & Vassilvitskii 2007, as scikit-learn), one start per generator,
    all starts batched: each new centroid of a start is the best of ``2 + log k`` candidates
    drawn with probability proportional to squared distance. Returns (starts x k x d).

    Each step is one (starts * candidates x n) distance product on the device, so the points
    are read once per step for all starts: O(starts k n d) in all. A start draws only from its
    own generator, so its centroids do not depend on the other starts.
    """
    import torch

    n, dim, starts, device = points.shape[0], points.shape[1], len(generators), points.device
    trials = 2 + int(math.log(k))
    each = torch.arange(starts, device=device)
    first = torch.cat([torch.randint(n, (1,), generator=g, device=device) for g in generators])
    centroids = torch.empty((starts, k, dim), dtype=points.dtype, device=device)
    centroids[:, 0] = points[first]
    closest = _sq_distances(points, sq_norms, points[first]).T  # (starts, n)
    for c in range(1, k):
        cumulative = torch.cumsum(closest.double(), 1)
        draws = torch.stack([torch.rand(trials, generator=g, device=device, dtype=torch.float64) for g in generators])
        candidates = torch.searchsorted(cumulative, draws * cumulative[:, -1:]).clamp_(max=n - 1)
        to_candidates = _sq_distances(points, sq_norms, points[candidates.reshape(-1)]).T.reshape(starts, trials, n)
        candidate_dist = torch.minimum(closest[:, None, :], to_candidates)
        best = torch.argmin(candidate_dist.double().sum(2), 1)
        closest = candidate_dist[each, best]
        centroids[:, c] = points[candidates[each, best]]
    return centroids


#: one start's outcome: labels, squared distances, centroids, iterations, converged
_Run = tuple["torch.Tensor", "torch.Tensor", "torch.Tensor", int, bool]


def _lloyd(
    points: "torch.Tensor", centroids: "torch.Tensor", sq_norms: "torch.Tensor", max_iter: int, tol_abs: float
) -> list[_Run]:
    """Lloyd iterations of a batch of starts (``centroids``: starts x k x d, updated in place),
    each start stopping on its own rule as scikit-learn's: unchanged labels, or a centroid
    shift within ``tol_abs`` (then one more assignment), or ``max_iter``. The distances of
    the starts still running are one batched product per iteration."""
    import torch

    starts, k = centroids.shape[0], centroids.shape[1]
    runs: list[_Run | None] = [None] * starts
    previous: list["torch.Tensor | None"] = [None] * starts
    small_shift, n_iters, active = [False] * starts, [0] * starts, list(range(starts))
    for n_iter in range(1, max_iter + 1):
        labels, distances = _assign(points, sq_norms, centroids[active])
        running = []
        for row, s in enumerate(active):
            n_iters[s] = n_iter
            if previous[s] is not None and torch.equal(labels[row], previous[s]):
                runs[s] = (labels[row], distances[row], centroids[s], n_iter, True)
                continue
            updated = _update(points, labels[row], distances[row], k)
            small_shift[s] = float(((updated - centroids[s]) ** 2).sum()) <= tol_abs
            centroids[s] = updated
            previous[s] = labels[row]
            if not small_shift[s]:
                running.append(s)
        active = running
        if not active:
            break
    pending = [s for s in range(starts) if runs[s] is None]
    if pending:
        labels, distances = _assign(points, sq_norms, centroids[pending])
        for row, s in enumerate(pending):
            runs[s] = (labels[row], distances[row], centroids[s], n_iters[s], small_shift[s])
    return runs  # type: ignore[return-value]


def _assign(
    points: "torch.Tensor", sq_norms: "torch.Tensor", centroids: "torch.Tensor"
) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Nearest centroid of every point and the squared distance to it, for each start of
    ``centroids`` (starts x k x d): (starts x n) each. The starts' centroids are stacked into
    one product, computed in row chunks of at most ``_DISTANCE_BLOCK`` floats."""
    import torch

    starts, k, dim = centroids.shape
    stacked = centroids.reshape(starts * k, dim)
    chunk = max(1, _DISTANCE_BLOCK // (starts * k))
    labels, distances = [], []
    for begin in range(0, points.shape[0], chunk):
        rows = slice(begin, begin + chunk)
        block = _sq_distances(points[rows], sq_norms[rows], stacked).view(-1, starts, k)
        best, label = torch.min(block, 2)
        labels.append(label.T)
        distances.append(best.T)
    return torch.cat(labels, 1), torch.cat(distances, 1)


def _update(points: "torch.Tensor", labels: "torch.Tensor", distances: "torch.Tensor", k: int) -> "torch.Tensor":
    """Means of the clusters; an empty cluster takes the point farthest from its centroid."""
    import torch

    counts = torch.bincount(labels, minlength=k)
    sums = torch.zeros((k, points.shape[1]), dtype=points.dtype, device=points.device).index_add_(0, labels, points)
    means = sums / counts.clamp(min=1)[:, None].to(points.dtype)
    empty = torch.nonzero(counts == 0)[:, 0]
    if len(empty):
        far = torch.topk(distances, len(empty)).indices
        means[empty] = points[far]
    return means


def _sq_distances(rows: "torch.Tensor", row_sq_norms: "torch.Tensor", others: "torch.Tensor") -> "torch.Tensor":
    """Squared Euclidean distances (len(rows) x len(others)) by the dot-product expansion."""
    dist = row_sq_norms[:, None] - 2.0 * (rows @ others.T) + (others * others).sum(1)[None, :]
    return dist.clamp_(min=0.0)
