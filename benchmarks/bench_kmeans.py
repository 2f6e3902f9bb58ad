"""K-means with 10 starts: xlingbench.compute.kmeans as it runs (Lloyd skipping the points its
distance bounds clear), against the same code with the bounds switched off (plain Lloyd, every
point every iteration: the labels must be identical), and against scikit-learn's
``KMeans(n_init=10)``, on the same data, K and budget.

Data: ``N`` x 384 float32 (multilingual-e5-small's width), ``K`` clusters, 10 starts, at most
``MAX_ITER`` Lloyd iterations each, from k-means++. The published setting is 20,000 points and
K = 600 (the defaults); on a small shared machine set ``XLINGBENCH_BENCH_N`` and
``XLINGBENCH_BENCH_K`` to something smaller. The baselines run in the same process; the ratios
are printed and stored in the benchmark's extra_info.

    pytest benchmarks/bench_kmeans.py --benchmark-enable -s -n 0
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import pytest

N = int(os.environ.get("XLINGBENCH_BENCH_N", "20000"))
K = int(os.environ.get("XLINGBENCH_BENCH_K", "600"))
D, N_INIT, MAX_ITER = 384, 10, 30
T = TypeVar("T")


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    """Clustered, not uniform, data: N // 10 latent centres plus noise (like word vectors)."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(N // 10, D)).astype(np.float32)
    return centres[rng.integers(len(centres), size=N)] + 0.5 * rng.normal(size=(N, D)).astype(np.float32)


def _timed(fn: Callable[[], T]) -> tuple[T, float, float]:
    """``fn()``, its wall-clock seconds, and the CPU seconds of this process meanwhile (all
    threads): on a shared machine the wall clock depends on the neighbours, CPU time much less."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def test_kmeans_ten_starts(benchmark, data: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.cluster import KMeans

    import xlingbench.compute.kmeans as km

    km.kmeans(data[:2000], 20, n_init=2, max_iter=3)  # warm-up: torch's thread pool and first allocations
    ours, ours_s, ours_cpu = benchmark.pedantic(
        lambda: _timed(lambda: km.kmeans(data, K, seed=0, n_init=N_INIT, max_iter=MAX_ITER)), rounds=1, iterations=1)
    monkeypatch.setattr(km, "_BOUNDED", False)  # plain Lloyd: the same starts, every point measured every time
    plain, plain_s, plain_cpu = _timed(lambda: km.kmeans(data, K, seed=0, n_init=N_INIT, max_iter=MAX_ITER))
    baseline, sklearn_s, sklearn_cpu = _timed(
        lambda: KMeans(K, n_init=N_INIT, max_iter=MAX_ITER, random_state=0, algorithm="lloyd").fit(data))
    figures = {"n": N, "k": K, "ours_s": ours_s, "plain_s": plain_s, "sklearn_s": sklearn_s, "ours_cpu_s": ours_cpu,
               "plain_cpu_s": plain_cpu, "sklearn_cpu_s": sklearn_cpu, "speedup_vs_plain": plain_s / ours_s,
               "speedup_vs_sklearn": sklearn_s / ours_s, "inertia_ratio": ours.inertia / baseline.inertia_,
               "spread_of_starts": max(ours.inertias) / ours.inertia}
    benchmark.extra_info.update(figures)
    print(f"\n{N} x {D}, K={K}, {N_INIT} starts, wall (CPU) seconds: bounded {ours_s:.1f} ({ours_cpu:.1f})  "
          f"plain Lloyd {plain_s:.1f} ({plain_cpu:.1f})  sklearn {sklearn_s:.1f} ({sklearn_cpu:.1f})  "
          f"speed-up vs plain x{plain_s / ours_s:.2f} (CPU x{plain_cpu / ours_cpu:.2f}), vs sklearn x{sklearn_s / ours_s:.2f} "
          f"(CPU x{sklearn_cpu / ours_cpu:.2f})  inertia ours/sklearn {ours.inertia / baseline.inertia_:.4f}  "
          f"worst/best start {max(ours.inertias) / ours.inertia:.4f}")
    assert np.array_equal(plain.labels, ours.labels) and plain.inertias == ours.inertias
    assert ours.inertia / baseline.inertia_ < 1.02


#: torch threads of the side-by-side benchmark: a 2-core machine's both cores
THREADS = int(os.environ.get("XLINGBENCH_BENCH_THREADS", "2"))


def test_kmeans_starts_side_by_side(benchmark, data: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same 10 starts on ``THREADS`` torch threads: run side by side, one thread each (as
    xlingbench.compute.kmeans runs them), against one after another with every operation split
    over the threads (``_PARALLEL_STARTS = 1``, the previous behaviour). Labels must be identical.
    At tasks 4-5's sizes set XLINGBENCH_BENCH_N=8000 XLINGBENCH_BENCH_K=600."""
    import torch

    import xlingbench.compute.kmeans as km

    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        km.kmeans(data[:2000], 20, n_init=2, max_iter=3)  # warm-up
        ours, ours_s, ours_cpu = benchmark.pedantic(
            lambda: _timed(lambda: km.kmeans(data, K, seed=0, n_init=N_INIT, max_iter=MAX_ITER)), rounds=1, iterations=1)
        monkeypatch.setattr(km, "_PARALLEL_STARTS", 1)
        serial, serial_s, serial_cpu = _timed(lambda: km.kmeans(data, K, seed=0, n_init=N_INIT, max_iter=MAX_ITER))
    finally:
        torch.set_num_threads(threads)
    figures = {"n": N, "k": K, "threads": THREADS, "side_by_side_s": ours_s, "one_after_another_s": serial_s,
               "side_by_side_cpu_s": ours_cpu, "one_after_another_cpu_s": serial_cpu, "speedup": serial_s / ours_s}
    benchmark.extra_info.update(figures)
    print(f"\n{N} x {D}, K={K}, {N_INIT} starts on {THREADS} threads, wall (CPU) seconds: side by side {ours_s:.1f} "
          f"({ours_cpu:.1f})  one after another {serial_s:.1f} ({serial_cpu:.1f})  speed-up x{serial_s / ours_s:.2f}")
    assert np.array_equal(serial.labels, ours.labels)
    assert ours.inertias == pytest.approx(serial.inertias, rel=1e-6)


#: the default run's COLAP clustering (en+de occurrences of 1,000 catalog messages): small enough
#: for the Gram matrix of the k-means++ candidates (``_GRAM_FLOATS``)
GRAM_N = int(os.environ.get("XLINGBENCH_BENCH_GRAM_N", "7365"))
GRAM_K = int(os.environ.get("XLINGBENCH_BENCH_GRAM_K", "274"))


def test_kmeans_plusplus_from_the_gram_matrix(benchmark, monkeypatch: pytest.MonkeyPatch) -> None:
    """10 starts to convergence at the default run's COLAP size: k-means++ candidates' distances read
    from the Gram matrix of the points (computed once for all starts), against a product per step
    (``_GRAM_FLOATS = 0``, the previous behaviour). Labels and inertias must be identical. The data
    are word-occurrence-like (``GRAM_N // 5`` types around which occurrences scatter), or the matrix
    named by ``XLINGBENCH_BENCH_VECTORS`` (e.g. one layer of a COLAP run's word vectors)."""
    import xlingbench.compute.kmeans as km

    saved = os.environ.get("XLINGBENCH_BENCH_VECTORS")
    if saved:
        x = np.ascontiguousarray(np.load(saved)[:GRAM_N], dtype=np.float32)
    else:
        rng = np.random.default_rng(0)
        types = rng.normal(size=(GRAM_N // 5, D)).astype(np.float32)
        x = types[rng.integers(len(types), size=GRAM_N)] + 0.6 * rng.normal(size=(GRAM_N, D)).astype(np.float32)
    assert len(x) ** 2 <= km._GRAM_FLOATS
    km.kmeans(x[:1000], 20, n_init=2, max_iter=3)  # warm-up
    ours, ours_s, ours_cpu = benchmark.pedantic(lambda: _timed(lambda: km.kmeans(x, GRAM_K, seed=0)), rounds=1, iterations=1)
    monkeypatch.setattr(km, "_GRAM_FLOATS", 0)
    per_step, per_step_s, per_step_cpu = _timed(lambda: km.kmeans(x, GRAM_K, seed=0))
    figures = {"n": len(x), "k": GRAM_K, "gram_s": ours_s, "per_step_s": per_step_s, "gram_cpu_s": ours_cpu,
               "per_step_cpu_s": per_step_cpu, "cpu_ratio": per_step_cpu / ours_cpu}
    benchmark.extra_info.update(figures)
    print(f"\n{len(x)} x {x.shape[1]}, K={GRAM_K}, {N_INIT} starts, wall (CPU) seconds: Gram rows {ours_s:.1f} "
          f"({ours_cpu:.1f})  a product per step {per_step_s:.1f} ({per_step_cpu:.1f})  CPU x{per_step_cpu / ours_cpu:.2f}")
    assert np.array_equal(per_step.labels, ours.labels) and per_step.inertias == ours.inertias
