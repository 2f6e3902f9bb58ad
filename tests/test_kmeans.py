"""K-means on torch: planted clusters, agreement with scikit-learn, determinism, K shrinking."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

import xlingbench.compute.kmeans as km
from xlingbench.core.errors import UserError
from xlingbench.compute.kmeans import choose_k, kmeans


def planted(n_clusters: int = 12, per_cluster: int = 40, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Well-separated Gaussian blobs (centres ~10 apart, spread 0.1) and their true labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=10.0, size=(n_clusters, dim))
    truth = np.repeat(np.arange(n_clusters), per_cluster)
    return (centres[truth] + rng.normal(scale=0.1, size=(len(truth), dim))).astype(np.float32), truth


def test_recovers_planted_clusters() -> None:
    x, truth = planted()
    result = kmeans(x, 12, seed=3)
    assert adjusted_rand_score(truth, result.labels) == 1.0
    assert result.converged
    assert result.centroids.shape == (12, 16)


def test_matches_sklearn_inertia_from_the_same_init() -> None:
    x = np.random.default_rng(1).normal(size=(3000, 24)).astype(np.float32)
    init = x[np.random.default_rng(2).choice(len(x), 40, replace=False)]
    ours = kmeans(x, 40, init=init, max_iter=300, tol=1e-4)
    theirs = KMeans(40, init=init, n_init=1, max_iter=300, tol=1e-4).fit(x)
    assert ours.inertia == pytest.approx(theirs.inertia_, rel=1e-4)
    assert adjusted_rand_score(ours.labels, theirs.labels_) > 0.99


def test_inertia_is_the_sum_of_squared_distances_to_assigned_centroids() -> None:
    x = np.random.default_rng(4).normal(size=(500, 8)).astype(np.float32)
    result = kmeans(x, 7, seed=0)
    assert result.inertia == pytest.approx(float(((x - result.centroids[result.labels]) ** 2).sum()), rel=1e-4)


def test_deterministic_for_a_seed_and_seed_matters() -> None:
    x = np.random.default_rng(5).normal(size=(800, 10)).astype(np.float32)
    first, again, other = kmeans(x, 20, seed=7), kmeans(x, 20, seed=7), kmeans(x, 20, seed=8)
    assert np.array_equal(first.labels, again.labels) and first.inertia == again.inertia
    assert not np.array_equal(first.centroids, other.centroids)


def test_chunked_distances_give_the_same_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.random.default_rng(6).normal(size=(1000, 12)).astype(np.float32)
    whole = kmeans(x, 9, seed=1)
    monkeypatch.setattr(km, "_DISTANCE_BLOCK", 9 * 37)  # 37 rows per chunk
    chunked = kmeans(x, 9, seed=1)
    assert np.array_equal(whole.labels, chunked.labels)


def test_float16_input_and_an_empty_cluster_is_refilled() -> None:
    x, _ = planted(n_clusters=4, per_cluster=30)
    init = np.vstack([x[[0, 30, 60]], np.full((1, x.shape[1]), 1e4, dtype=np.float32)])  # 4th centre far from all
    result = kmeans(x.astype(np.float16), 4, init=init)
    assert len(np.unique(result.labels)) == 4


def test_rejects_impossible_k() -> None:
    with pytest.raises(ValueError):
        kmeans(np.zeros((3, 2), dtype=np.float32), 4)


def test_choose_k_keeps_or_shrinks_with_a_warning() -> None:
    assert choose_k(6000, 600) == (600, None)
    k, warning = choose_k(5791, 600)
    assert k == 579 and "579" in warning and "600" in warning
    assert choose_k(20, 600)[0] == 2
    with pytest.raises(UserError):
        choose_k(19, 600)
