"""K-means: xlingbench.compute.kmeans (torch) against scikit-learn's KMeans on the same data, K and budget.

Data: 20,000 x 384 float32 (multilingual-e5-small's width), K = 600, one initialisation, at most
``MAX_ITER`` Lloyd iterations each, both from their own k-means++. The scikit-learn baseline runs
in the same process; the ratio is printed and stored in the benchmark's extra_info.

    pytest benchmarks/bench_kmeans.py --benchmark-enable -s
"""
from __future__ import annotations

import numpy as np
import pytest

N, D, K, MAX_ITER = 20_000, 384, 600, 30


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    """Clustered, not uniform, data: 2,000 latent centres plus noise (like word vectors)."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2_000, D)).astype(np.float32)
    return centres[rng.integers(len(centres), size=N)] + 0.5 * rng.normal(size=(N, D)).astype(np.float32)


def test_kmeans_against_sklearn(benchmark, data: np.ndarray) -> None:
    import time

    from sklearn.cluster import KMeans

    from xlingbench.compute.kmeans import kmeans

    started = time.perf_counter()
    baseline = KMeans(K, n_init=1, max_iter=MAX_ITER, random_state=0, algorithm="lloyd").fit(data)
    sklearn_s = time.perf_counter() - started
    ours = benchmark.pedantic(lambda: kmeans(data, K, seed=0, max_iter=MAX_ITER), rounds=1, iterations=1)
    ours_s = benchmark.stats.stats.mean
    benchmark.extra_info.update(sklearn_s=sklearn_s, ours_s=ours_s, speedup=sklearn_s / ours_s,
                                inertia_ratio=ours.inertia / baseline.inertia_)
    print(f"\nsklearn {sklearn_s:.1f}s  ours {ours_s:.1f}s  speedup x{sklearn_s / ours_s:.2f}  "
          f"inertia ours/sklearn {ours.inertia / baseline.inertia_:.4f}")
    assert ours.inertia / baseline.inertia_ < 1.02
