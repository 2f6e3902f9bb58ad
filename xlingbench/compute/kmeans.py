"""Seeded K-means on torch (CPU or GPU): k-means++ seeding and Lloyd iterations, bounded memory.

Why not scikit-learn: its k-means++ seeding runs point by point in Python-sized steps and takes
minutes at 200k word vectors and K = 600; here every seeding step is one matrix product on the
device, and Lloyd distances are computed in row chunks so memory stays at ``chunk x K`` floats
whatever the number of points. The algorithm follows scikit-learn's ``KMeans(algorithm="lloyd")``
step for step (greedy k-means++ with ``2 + log K`` candidates, tolerance relative to the mean
feature variance, stop on unchanged labels, farthest points for empty clusters, 10 starts with
the best inertia kept), so the two agree in inertia from the same initial centroids. The starts'
seeding runs batched: one distance product per step serves all of them, which reads the points
once per step instead of once per start. When the points are few enough (:func:`_gram_pays`), the
candidates' products are not computed at all: candidates are points, so their products with every
point are rows of the Gram matrix, computed once for all starts (at the default run's COLAP size,
7,365 points and 10 starts x 7 candidates x 274 steps, 2.6x fewer products, in one large product
that BLAS runs faster than the thin per-step ones), the same numbers bit for bit.

Lloyd skips the points that provably keep their cluster (Elkan 2003, Hamerly 2010): each point
keeps an upper bound on its distance to its centroid and lower bounds on its distances to its
``_TRACKED`` nearest other centroids and to all the rest; when the centroids move, the bounds move
by the shifts (triangle inequality), and only the points whose bounds overlap are measured again,
by a smaller product. On PUD word vectors (K = 565, d = 384) that is about 38% of the rows
over a run. The bounds carry the rounding error of the float32 product (:func:`_margin`), so a skipped
point is one whose nearest centroid plain Lloyd's product would not change either: the labels are
plain Lloyd's up to float ties (``_BOUNDED = False`` runs plain Lloyd, the reference the tests and
the benchmark compare with). On the CPU the starts run side by side, one torch thread each
(:func:`_side_by_side`): the operations are too small for intra-op threads to pay. Results are
deterministic for a seed on a given device (CPU and GPU draw different random numbers).

Why not faiss-cpu's k-means (``benchmarks/bench_kmeans_faiss.py``, docs/tasks.md): on the default
run's own word vectors (CALIGN, K = 125, 10 starts) it needs about half our CPU time on one
thread, but its best inertia is 2-11% higher (random or its k-means++ starts, run until its
objective stops falling), above even our worst single start, and on two threads of a busy
machine its OpenMP barriers made it about 3x slower than on one. Lower quality is not a trade
a benchmark's concepts can make for speed.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from xlingbench.compute.threads import side_by_side
from xlingbench.core.errors import UserError

if TYPE_CHECKING:
    import torch

#: K-means is shrunk so that a concept holds on average at least this many word types: twice
#: the "more than 5 types" a CALIGN source concept needs, so most concepts can be counted.
TYPES_PER_CONCEPT = 10
#: floats of a distance block held at once (64 MiB of float32): Lloyd's chunk x K, and the
#: k-means++ candidates' starts x trials x n (which bounds how many starts are seeded together)
_DISTANCE_BLOCK = 1 << 24
#: nearest centroids whose lower bounds each point keeps; one more bound covers all the others. On
#: PUD word vectors (K = 565) 8 leave ~38% of the rows to measure over a run, against ~60% with one
#: bound for all (Hamerly) and ~22% with one per centroid (Elkan, at n x K memory per start); more
#: than 8 saves few rows and costs more in the partial sort that refreshes the bounds
_TRACKED = 8
#: skip the points whose bounds say their cluster cannot change; False measures every point at
#: every iteration (plain Lloyd: the reference of the tests and benchmark)
_BOUNDED = True
#: most starts (or groups of starts) run at once on the CPU, one torch thread each
#: (:func:`_side_by_side`): each holds its own distance block (up to 64 MiB) and bounds (~160 bytes a point)
_PARALLEL_STARTS = 4
#: largest Gram matrix (points x points floats, 256 MiB) computed for the k-means++ candidates
#: (:func:`_gram_pays`); beyond it each step multiplies its candidates with the points
_GRAM_FLOATS = 1 << 26
#: rows of the Gram matrix computed per job (one torch thread each, side by side)
_GRAM_ROWS = 1024


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

    >>> choose_k(20_000)
    (600, None)
    >>> choose_k(1053)[0]
    105
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
    :func:`start_seeds`; the start of lowest inertia is kept (the first on a tie).
    ``init`` gives starting centroids (k x d) instead: then there is one start, as in
    scikit-learn. ``tol`` is relative, as in scikit-learn: a start stops when its summed squared
    centroid shift is at most ``tol`` times the mean per-feature variance, or when no label changes.

    Three planted clusters of 20 points around far-apart centres are found whole:

    >>> rng = np.random.default_rng(0)
    >>> centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    >>> x = np.repeat(centres, 20, axis=0) + rng.normal(scale=0.5, size=(60, 2))
    >>> found = kmeans(x, 3, seed=0)
    >>> sorted(np.bincount(found.labels).tolist()), len(set(found.labels[::20].tolist()))
    ([20, 20, 20], 3)
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
        starts = torch.as_tensor(np.asarray(init), device=device).float()[None].clone()
    else:
        seeds = start_seeds(seed, n_init)
        per_group = _starts_per_group(points.shape[0], k, n_init)
        gram = _gram(points) if _gram_pays(points.shape[0], k, n_init) else None
        starts = torch.cat(_side_by_side([partial(_seed_group, points, k, seeds[i : i + per_group], sq_norms, gram)
                                          for i in range(0, n_init, per_group)], points.device))
        del gram
    runs = _side_by_side([partial(_lloyd, points, centroids, sq_norms, max_iter, tol_abs) for centroids in starts],
                         points.device)
    inertias = tuple(float(distances.double().sum()) for _, distances, _, _, _ in runs)
    best = int(np.argmin(inertias))
    labels, _, centroids, n_iter, converged = runs[best]
    return KMeansResult(labels=labels.cpu().numpy().astype(np.int64), centroids=centroids.cpu().numpy(),
                        inertia=inertias[best], n_iter=n_iter, converged=converged, start=best, inertias=inertias)


def _starts_per_group(n: int, k: int, n_init: int) -> int:
    """How many starts are seeded at once: as many as keep the k-means++ candidate block
    (starts x trials x n) within ``_DISTANCE_BLOCK`` floats, and few enough that every
    :func:`_side_by_side` worker has a group; at least one."""
    import torch

    trials = 2 + int(math.log(k))
    at_once = max(1, min(torch.get_num_threads(), _PARALLEL_STARTS))
    return max(1, min(-(-n_init // at_once), _DISTANCE_BLOCK // (trials * n)))


def _gram_pays(n: int, k: int, n_init: int) -> bool:
    """Whether k-means++ should read its candidates from the Gram matrix: it fits ``_GRAM_FLOATS``
    and holds fewer products (n rows of n) than the steps would compute (n_init x trials x (k - 1)
    candidate rows of n). With few clusters and many points the steps are the cheaper way.

    >>> _gram_pays(7365, 274, 10), _gram_pays(7365, 20, 10), _gram_pays(9000, 600, 10)
    (True, False, False)
    """
    return n * n <= _GRAM_FLOATS and n <= n_init * (2 + int(math.log(k))) * (k - 1)


def _gram(points: torch.Tensor) -> torch.Tensor:
    """``-2 P P^T`` (n x n), the products :func:`_sq_distances` takes between points, computed in
    blocks of rows side by side (one thread each, so the sums do not depend on the core count)."""
    import torch

    n, scaled = points.shape[0], points.T.mul(-2.0)
    gram = torch.empty((n, n), dtype=points.dtype, device=points.device)
    _side_by_side([partial(torch.mm, points[i : i + _GRAM_ROWS], scaled, out=gram[i : i + _GRAM_ROWS])
                   for i in range(0, n, _GRAM_ROWS)], points.device)
    return gram


def _seed_group(points: torch.Tensor, k: int, seeds: list[int], sq_norms: torch.Tensor,
                gram: torch.Tensor | None) -> torch.Tensor:
    """k-means++ centroids (starts x k x d) of the given start seeds, one generator each."""
    import torch

    generators = [torch.Generator(device=points.device).manual_seed(s) for s in seeds]
    return kmeans_plusplus(points, k, generators, sq_norms, gram)


def kmeans_plusplus(
    points: torch.Tensor, k: int, generators: list[torch.Generator], sq_norms: torch.Tensor,
    gram: torch.Tensor | None = None,
) -> torch.Tensor:
    """Greedy k-means++ (Arthur & Vassilvitskii 2007, as scikit-learn), one start per generator,
    all starts batched: each new centroid of a start is the best of ``2 + log k`` candidates
    drawn with probability proportional to squared distance. Returns (starts x k x d).

    Each step is one (n x starts * candidates) distance product on the device, so the points
    are read once per step for all starts: O(starts k n d) in all. A start draws only from its
    own generator, so its centroids do not depend on the other starts. The candidates' distances
    are reduced where the product left them (no transposed or float64 copies of the block).
    With ``gram`` (:func:`_gram`) the products are its rows, not computed again.
    """
    import torch

    n, dim, starts, device = points.shape[0], points.shape[1], len(generators), points.device
    trials = 2 + int(math.log(k))
    each = torch.arange(starts, device=device)
    first = torch.cat([torch.randint(n, (1,), generator=g, device=device) for g in generators])
    centroids = torch.empty((starts, k, dim), dtype=points.dtype, device=device)
    centroids[:, 0] = points[first]
    closest = _to_points(points, sq_norms, first, gram).contiguous()  # (starts, n)
    for c in range(1, k):
        cumulative = torch.cumsum(closest, 1, dtype=torch.float64)
        draws = torch.stack([torch.rand(trials, generator=g, device=device, dtype=torch.float64) for g in generators])
        candidates = torch.searchsorted(cumulative, draws * cumulative[:, -1:]).clamp_(max=n - 1).reshape(-1)
        to_candidates = _to_points(points, sq_norms, candidates, gram).view(starts, trials, n)
        candidate_dist = torch.minimum(closest[:, None, :], to_candidates)
        best = torch.argmin(candidate_dist.sum(2, dtype=torch.float64), 1)
        closest = candidate_dist[each, best]
        centroids[:, c] = points[candidates.view(starts, trials)[each, best]]
    return centroids


T = TypeVar("T")
#: one start's outcome: labels, squared distances, centroids, iterations, converged
_Run = tuple["torch.Tensor", "torch.Tensor", "torch.Tensor", int, bool]


def _side_by_side(jobs: list[Callable[[], T]], device: torch.device) -> list[T]:
    """The results of ``jobs`` (independent starts, or groups of starts), each on one torch thread
    and, on the CPU, up to ``_PARALLEL_STARTS`` at once (:func:`xlingbench.compute.threads.side_by_side`)
    instead of one after another with every operation split over all the threads.

    Why: at CALIGN/COLAP sizes (a few thousand points, K of 100-600) most operations of k-means++
    and Lloyd are too small for intra-op threading to pay: each waits at a barrier for every
    thread, and on a busy machine a descheduled thread stalls them all (k-means++ of 10 starts on
    3,000 points took 4.6 s with two threads and 0.5 s with one on a loaded 2-core machine).
    Starts are independent, so threads each running their own need no barrier, and one thread a
    start gives the same sums, hence the same labels, on any number of cores.
    """
    import torch

    workers = min(len(jobs), torch.get_num_threads(), _PARALLEL_STARTS) if device.type == "cpu" else 1
    return side_by_side(jobs, threads_each=1, workers=workers)


def _lloyd(
    points: torch.Tensor, centroids: torch.Tensor, sq_norms: torch.Tensor, max_iter: int, tol_abs: float
) -> _Run:
    """Lloyd iterations of one start (``centroids``: k x d) with scikit-learn's stopping rule:
    unchanged labels, or a summed squared centroid shift within ``tol_abs`` (then one more
    assignment), or ``max_iter``. The squared distances returned are measured point by point to
    the final centroids, as scikit-learn's inertia."""
    bounds = _Bounds(points, sq_norms, centroids)
    for n_iter in range(1, max_iter + 1):
        updated = _update(points, bounds.labels, centroids)
        shift = updated - centroids
        converged = float((shift * shift).sum()) <= tol_abs
        bounds.move(shift.norm(dim=1))
        centroids = updated
        changed = bounds.assign(points, sq_norms, centroids)
        if converged or n_iter == max_iter:  # this assignment was scikit-learn's closing one
            break
        if not changed:  # this assignment was iteration n_iter + 1, and it changed nothing
            n_iter, converged = n_iter + 1, True
            break
    return bounds.labels, _assigned_sq_distances(points, centroids, bounds.labels), centroids, n_iter, converged


class _Bounds:
    """The cluster of every point of one start and the distance bounds that let Lloyd skip it.

    ``upper``: at least the distance to its centroid; ``lower[:, :m]``: at most the distances to
    the ``m`` centroids of ``tracked`` (its nearest when last measured); ``lower[:, m]``: at most the
    distance to any other centroid. Kept in float64 so that the bound arithmetic adds no rounding
    of its own; the float32 product's is allowed for by :func:`_margin`.
    """

    def __init__(self, points: torch.Tensor, sq_norms: torch.Tensor, centroids: torch.Tensor) -> None:
        import torch

        n, k, device = points.shape[0], centroids.shape[0], points.device
        self.tracked_count = min(_TRACKED, k - 1)
        self.labels = torch.zeros(n, dtype=torch.long, device=device)
        self.upper = torch.empty(n, dtype=torch.float64, device=device)
        self.lower = torch.empty((n, self.tracked_count + 1), dtype=torch.float64, device=device)
        self.tracked = torch.empty((n, self.tracked_count), dtype=torch.long, device=device)
        # one distance block for every assignment: blocks of changing size, each above glibc's
        # mmap threshold, went back to the OS at every iteration and faulted in again (10x slower
        # with two threads on a busy machine)
        self.block = torch.empty((min(n, max(1, _DISTANCE_BLOCK // k)), k), dtype=points.dtype, device=device)
        # and one buffer for the rows a partial assignment measures, for the same reason
        self.gathered = torch.empty((len(self.block), points.shape[1]), dtype=points.dtype, device=device)
        self._measure(points, sq_norms, centroids, torch.arange(n, device=device), _margin(sq_norms, centroids))

    def move(self, shifts: torch.Tensor) -> None:
        """Loosen the bounds by how far each centroid moved (triangle inequality)."""
        shifts = shifts.double()
        self.upper += shifts[self.labels]
        self.lower[:, :-1] -= shifts[self.tracked]
        self.lower[:, -1] -= shifts.max()

    def assign(self, points: torch.Tensor, sq_norms: torch.Tensor, centroids: torch.Tensor) -> bool:
        """Nearest centroids after a move; True if any label changed. A point is measured again
        only if its upper bound does not clear its lower bounds by three rounding margins (its
        own, and the product's on either side). Its bound is not first tightened by measuring the
        distance to its own centroid (Hamerly's step): that costs about as much memory traffic
        as the product with every centroid, which BLAS computes at a far higher rate."""
        import torch

        margin = _margin(sq_norms, centroids)
        if not _BOUNDED:
            return self._measure(points, sq_norms, centroids, torch.arange(len(sq_norms), device=points.device), margin)
        other = self.lower.clamp(min=0.0)
        other[:, :-1].masked_fill_(self.tracked == self.labels[:, None], math.inf)
        overlap = self.upper**2 >= other.min(1).values ** 2 - 3.0 * margin
        return self._measure(points, sq_norms, centroids, torch.nonzero(overlap)[:, 0], margin)

    def _measure(self, points: torch.Tensor, sq_norms: torch.Tensor, centroids: torch.Tensor,
                 rows: torch.Tensor, margin: torch.Tensor) -> bool:
        """Distances of ``rows`` to every centroid, in chunks of ``_DISTANCE_BLOCK`` floats: their
        nearest (as plain Lloyd's product finds it) and fresh bounds. True if a label changed."""
        import torch

        chunk, m, changed = len(self.block), self.tracked_count, False
        for begin in range(0, len(rows), chunk):
            part = rows[begin : begin + chunk]
            measured = points if len(part) == len(points) else torch.index_select(points, 0, part, out=self.gathered[: len(part)])
            block = _sq_distances(measured, sq_norms[part], centroids, out=self.block[: len(part)])
            values, ids = torch.topk(block, m + 1, dim=1, largest=False)
            label = _first_nearest(block, values, ids)
            changed = changed or bool((label != self.labels[part]).any())
            slack = margin[part]
            self.labels.index_copy_(0, part, label)
            self.upper.index_copy_(0, part, (values[:, 0].double() + slack).sqrt_())
            self.lower.index_copy_(0, part, (values.double() - slack[:, None]).clamp_(min=0.0).sqrt_())
            self.tracked.index_copy_(0, part, ids[:, :m].contiguous())
        return changed


def _first_nearest(block: torch.Tensor, values: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Column of each row's smallest value, the first one on a tie (as ``torch.min`` picks, and
    plain Lloyd): the selection's own first column, except in the rare rows where its next value
    ties with it, which ``torch.min`` settles. Saves a full pass over the block per assignment."""
    import torch

    label = ids[:, 0].clone()
    tied = torch.nonzero(values[:, 1] == values[:, 0])[:, 0] if values.shape[1] > 1 else label[:0]
    if len(tied):
        label[tied] = torch.min(block[tied], 1).indices
    return label


def _margin(sq_norms: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Per point, the most by which a float32 squared distance |x|^2 - 2 x.c + |c|^2 to any
    centroid can be off: twice the worst case (d + 2) * 2^-24 of a float32 dot product in d
    dimensions (Higham 2002), relative to |x|^2 + |c|^2."""
    rounding = 2 * (centroids.shape[1] + 2) * 2.0**-24
    return rounding * (sq_norms.double() + float((centroids * centroids).sum(1).max()))


def _update(points: torch.Tensor, labels: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Means of the clusters; an empty cluster takes the point farthest from its centroid."""
    import torch

    k = centroids.shape[0]
    counts = torch.bincount(labels, minlength=k)
    sums = torch.zeros((k, points.shape[1]), dtype=points.dtype, device=points.device).index_add_(0, labels, points)
    means = sums / counts.clamp(min=1)[:, None].to(points.dtype)
    empty = torch.nonzero(counts == 0)[:, 0]
    if len(empty):
        far = torch.topk(_assigned_sq_distances(points, centroids, labels), len(empty)).indices
        means[empty] = points[far]
    return means


def _assigned_sq_distances(points: torch.Tensor, centroids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Squared distance of each point to its own centroid, by differences (no cancellation)."""
    difference = centroids.index_select(0, labels).sub_(points)  # one temporary: -(x - c), the same squares
    return difference.mul_(difference).sum(1)


def _to_points(points: torch.Tensor, sq_norms: torch.Tensor, ids: torch.Tensor, gram: torch.Tensor | None) -> torch.Tensor:
    """Squared distances (len(ids) x n) of the points ``ids`` to every point: :func:`_sq_distances`
    transposed, or with ``gram`` its rows completed the same way (the same two additions to each
    product, in the same order), bit for bit."""
    chosen = points[ids]
    if gram is None:
        return _sq_distances(points, sq_norms, chosen).T
    return gram.index_select(0, ids).add_(sq_norms[None, :]).add_((chosen * chosen).sum(1)[:, None]).clamp_(min=0.0)


def _sq_distances(
    rows: torch.Tensor, row_sq_norms: torch.Tensor, others: torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Squared Euclidean distances (len(rows) x len(others)) by the dot-product expansion,
    in place on the product (the same float operations, in the same order, as
    ``row_sq_norms[:, None] - 2 rows @ others.T + |others|^2``), written into ``out`` if given.

    The factor -2 goes into the small operand, not over the block: scaling by a power of two is
    exact, so every product and partial sum is exactly -2 times the unscaled one (the numbers
    do not change) and the block costs one element-wise pass fewer."""
    import torch

    dist = torch.mm(rows, others.T.mul(-2.0), out=out)
    dist.add_(row_sq_norms[:, None]).add_((others * others).sum(1)[None, :])
    return dist.clamp_(min=0.0)
