"""Seeded K-means on torch (CPU or GPU): k-means++ seeding and Lloyd iterations, bounded memory.

Why not scikit-learn: its k-means++ seeding runs point by point in Python-sized steps and takes
minutes at 200k word vectors and K = 600; here every seeding step is one matrix product on the
device, and Lloyd distances are computed in row chunks so memory stays at ``chunk x K`` floats
whatever the number of points. The algorithm follows scikit-learn's ``KMeans(algorithm="lloyd")``
step for step (greedy k-means++ with ``2 + log K`` candidates, tolerance relative to the mean
feature variance, stop on unchanged labels, farthest points for empty clusters), so the two
agree in inertia from the same initial centroids. Results are deterministic for a seed on a
given device (CPU and GPU draw different random numbers).
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
#: floats of the chunk x K distance block held at once (64 MiB of float32)
_DISTANCE_BLOCK = 1 << 24


@dataclass
class KMeansResult:
    """Cluster of each point, the centroids, and the sum of squared distances to them."""

    labels: np.ndarray  # (n,) int64
    centroids: np.ndarray  # (k, d) float32
    inertia: float
    n_iter: int
    converged: bool


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


def kmeans(
    x: np.ndarray,
    k: int,
    *,
    seed: int = 0,
    max_iter: int = 300,
    tol: float = 1e-4,
    init: np.ndarray | None = None,
    device: str = "cpu",
) -> KMeansResult:
    """Cluster the rows of ``x`` (any float dtype; computed in float32) into ``k`` clusters.

    ``init`` gives starting centroids (k x d); without it, greedy k-means++ seeded by ``seed``.
    ``tol`` is relative, as in scikit-learn: iterations stop when the summed squared centroid
    shift is at most ``tol`` times the mean per-feature variance, or when no label changes.
    """
    import torch

    points = torch.as_tensor(np.asarray(x), device=device).float()
    if not 1 <= k <= points.shape[0]:
        raise ValueError(f"k={k} must be between 1 and the number of points ({points.shape[0]})")
    if max_iter < 1:
        raise ValueError(f"max_iter={max_iter} must be at least 1")
    generator = torch.Generator(device=device).manual_seed(seed)
    sq_norms = (points * points).sum(1)
    if init is None:
        centroids = kmeans_plusplus(points, k, generator, sq_norms)
    else:
        centroids = torch.as_tensor(np.asarray(init), device=device).float().clone()
    tol_abs = float(points.var(0, unbiased=False).mean()) * tol
    labels, distances, n_iter, converged = _lloyd(points, centroids, sq_norms, max_iter, tol_abs)
    return KMeansResult(
        labels=labels.cpu().numpy().astype(np.int64),
        centroids=centroids.cpu().numpy(),
        inertia=float(distances.double().sum()),
        n_iter=n_iter,
        converged=converged,
    )


def kmeans_plusplus(
    points: "torch.Tensor", k: int, generator: "torch.Generator", sq_norms: "torch.Tensor"
) -> "torch.Tensor":
    """Greedy k-means++ (Arthur & Vassilvitskii 2007, as scikit-learn): each new centroid is the
    best of ``2 + log k`` candidates drawn with probability proportional to squared distance.

    Each step is one (candidates x n) distance product on the device: O(k n d) in all.
    """
    import torch

    n = points.shape[0]
    trials = 2 + int(math.log(k))
    centroids = torch.empty((k, points.shape[1]), dtype=points.dtype, device=points.device)
    first = int(torch.randint(n, (1,), generator=generator, device=points.device))
    centroids[0] = points[first]
    closest = _sq_distances(points, sq_norms, points[first : first + 1])[:, 0]
    for c in range(1, k):
        cumulative = torch.cumsum(closest.double(), 0)
        draws = torch.rand(trials, generator=generator, device=points.device, dtype=torch.float64) * cumulative[-1]
        candidates = torch.searchsorted(cumulative, draws).clamp_(max=n - 1)
        candidate_dist = torch.minimum(closest[None, :], _sq_distances(points, sq_norms, points[candidates]).T)
        best = int(torch.argmin(candidate_dist.double().sum(1)))
        closest = candidate_dist[best]
        centroids[c] = points[candidates[best]]
    return centroids


def _lloyd(
    points: "torch.Tensor", centroids: "torch.Tensor", sq_norms: "torch.Tensor", max_iter: int, tol_abs: float
) -> tuple["torch.Tensor", "torch.Tensor", int, bool]:
    """Lloyd iterations, updating ``centroids`` in place. Returns labels and squared distances
    of the final centroids (one more assignment unless stopped by unchanged labels), the
    number of iterations, and whether it converged before ``max_iter``."""
    import torch

    previous = None
    for n_iter in range(1, max_iter + 1):
        labels, distances = _assign(points, sq_norms, centroids)
        updated = _update(points, labels, distances, centroids.shape[0])
        if previous is not None and torch.equal(labels, previous):
            return labels, distances, n_iter, True
        shift = float(((updated - centroids) ** 2).sum())
        centroids.copy_(updated)
        previous = labels
        if shift <= tol_abs:
            break
    labels, distances = _assign(points, sq_norms, centroids)
    return labels, distances, n_iter, shift <= tol_abs


def _assign(
    points: "torch.Tensor", sq_norms: "torch.Tensor", centroids: "torch.Tensor"
) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Nearest centroid of every point and the squared distance to it, in row chunks."""
    import torch

    chunk = max(1, _DISTANCE_BLOCK // centroids.shape[0])
    labels, distances = [], []
    for start in range(0, points.shape[0], chunk):
        rows = slice(start, start + chunk)
        best, label = torch.min(_sq_distances(points[rows], sq_norms[rows], centroids), 1)
        labels.append(label)
        distances.append(best)
    return torch.cat(labels), torch.cat(distances)


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
