"""Word vectors made fit for K-means (tasks 4-5): how much variance the top dimensions hold, and
the two remedies, per-dimension standardisation and removal of rogue dimensions.

Why: K-means on raw vectors, as published, measures Euclidean distance, so a few "rogue"
dimensions whose values dwarf the rest (Timkey & van Schijndel 2021; the "massive activations"
of Sun et al. 2024) decide the clusters alone. A trained decoder's middle layers put 36-54% of
the variance in one dimension (Gemma 3 270M); an encoder's stay far flatter. The diagnostic says
which case a layer is; the remedies are options with a documented default per architecture
(docs/tasks.md, "Vectors fit for clustering").

Pure numpy: arrays in, arrays and numbers out; bad arguments raise ValueError.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

#: what ``normalise`` takes: raw vectors (as published), z-scores per dimension, rogue dimensions dropped
METHODS = ("none", "zscore", "rogue")
#: a dimension is rogue when its variance exceeds this many times the mean variance of the layer's dimensions
ROGUE_FACTOR = 10.0


def dimension_variances(x: np.ndarray) -> np.ndarray:
    """Variance of each dimension over the rows (float64, so float16 input cannot overflow)."""
    return np.asarray(x, dtype=np.float64).var(axis=0)


def top_dimension_shares(x: np.ndarray, counts: Iterable[int] = (1, 3)) -> dict[int, float]:
    """Percentage of the total variance held by the ``n`` highest-variance dimensions, for each ``n``.

    A flat layer of d dimensions gives about 100 n / d; a layer whose one dimension holds half
    the variance is one that raw K-means clusters on that dimension."""
    variances = np.sort(dimension_variances(x))[::-1]
    total = variances.sum()
    return {n: float(100.0 * variances[:n].sum() / total) if total > 0 else float("nan") for n in counts}


def rogue_dimensions(x: np.ndarray, factor: float = ROGUE_FACTOR) -> np.ndarray:
    """Indices (ascending) of the dimensions whose variance exceeds ``factor`` times the mean."""
    if factor <= 1:
        raise ValueError(f"rogue factor={factor} must be above 1 (the mean dimension would be rogue)")
    variances = dimension_variances(x)
    return np.flatnonzero(variances > factor * variances.mean())


def normalise(x: np.ndarray, method: str) -> np.ndarray:
    """``x`` (rows = word occurrences) made ready for K-means by ``method`` (one of :data:`METHODS`),
    as float32: "none" leaves the values; "zscore" centres each dimension and divides it by its
    standard deviation over the rows (a constant dimension stays 0); "rogue" drops the rogue
    dimensions (:func:`rogue_dimensions`) and keeps the rest as they are."""
    if method not in METHODS:
        raise ValueError(f"normalise={method!r} is not one of {', '.join(METHODS)}")
    values = np.asarray(x, dtype=np.float64)
    if method == "zscore":
        std = values.std(axis=0)
        values = (values - values.mean(axis=0)) / np.where(std > 0, std, 1.0)
    elif method == "rogue":
        keep = np.setdiff1d(np.arange(values.shape[1]), rogue_dimensions(values))
        values = values[:, keep]
    return values.astype(np.float32)
