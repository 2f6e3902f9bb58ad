"""Vectors fit for clustering (xlingbench.compute.normalise): the top-dimension variance diagnostic,
z-scores and rogue-dimension removal, checked against sklearn and numpy loops, and the property
they exist for: one planted rogue dimension decides raw K-means, and either remedy undoes it."""
from __future__ import annotations

import numpy as np
import pytest

from xlingbench.compute.kmeans import kmeans
from xlingbench.compute.normalise import METHODS, normalise, rogue_dimensions, top_dimension_shares


def planted_rogue(n_per: int = 60, clusters: int = 4, dim: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``clusters`` well-separated groups in ``dim`` dimensions plus one dimension of huge,
    structure-free values (as a trained decoder's massive activation): rows and true labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(clusters, dim))
    labels = np.repeat(np.arange(clusters), n_per)
    x = centres[labels] + 0.3 * rng.normal(size=(len(labels), dim))
    rogue = rng.normal(scale=400.0, size=(len(labels), 1))
    return np.hstack([x[:, :5], rogue, x[:, 5:]]).astype(np.float16), labels


def test_top_dimension_shares_against_a_loop() -> None:
    x, _ = planted_rogue()
    variances = [float(np.var(x[:, j].astype(np.float64))) for j in range(x.shape[1])]
    ordered = sorted(variances, reverse=True)
    shares = top_dimension_shares(x, (1, 3))
    assert shares[1] == pytest.approx(100 * ordered[0] / sum(variances))
    assert shares[3] == pytest.approx(100 * sum(ordered[:3]) / sum(variances))
    assert shares[1] > 90  # the planted rogue dimension
    flat = np.random.default_rng(1).normal(size=(5000, 20))
    assert top_dimension_shares(flat, (1,))[1] == pytest.approx(5.0, rel=0.15)  # about 100/d when flat


def test_rogue_dimensions_find_the_planted_one_only() -> None:
    x, _ = planted_rogue()
    assert rogue_dimensions(x).tolist() == [5]
    assert rogue_dimensions(np.random.default_rng(2).normal(size=(500, 30))).tolist() == []
    with pytest.raises(ValueError, match="above 1"):
        rogue_dimensions(x, factor=1.0)


def test_zscore_equals_sklearn_and_rogue_drops_the_dimension() -> None:
    from sklearn.preprocessing import StandardScaler

    x, _ = planted_rogue()
    x[:, 0] = 1.0  # a constant dimension stays 0, not NaN
    z = normalise(x, "zscore")
    assert z.dtype == np.float32 and np.all(np.isfinite(z))
    np.testing.assert_allclose(z, StandardScaler().fit_transform(x.astype(np.float64)), atol=1e-5)
    dropped = normalise(x, "rogue")
    np.testing.assert_array_equal(dropped, np.delete(x, 5, axis=1).astype(np.float32))
    np.testing.assert_array_equal(normalise(x, "none"), x.astype(np.float32))
    with pytest.raises(ValueError, match="not one of"):
        normalise(x, "l2")


@pytest.mark.parametrize("method", [m for m in METHODS if m != "none"])
def test_a_rogue_dimension_decides_raw_kmeans_and_the_remedies_undo_it(method: str) -> None:
    from sklearn.metrics import adjusted_rand_score

    x, truth = planted_rogue()
    raw = kmeans(x, 4, seed=0, n_init=5).labels
    fixed = kmeans(normalise(x, method), 4, seed=0, n_init=5).labels
    assert adjusted_rand_score(truth, raw) < 0.3  # the clusters follow the rogue dimension
    assert adjusted_rand_score(truth, fixed) > 0.95
