"""K-means with 10 starts: xlingbench.compute.kmeans against faiss-cpu's ``faiss.Kmeans`` on the
same vectors, at 1 and 2 threads: wall and CPU seconds, the best inertia of each, and whether
each gives bitwise the same labels for the same seed twice and on 1 and 2 threads.

Why: faiss is a well-kept library with a fast k-means; it would replace the torch path behind
:func:`xlingbench.compute.kmeans.kmeans` only if it were faster at equal inertia and as
deterministic. faiss starts from random points (or its own k-means++) and stops when its
objective stops falling; ours runs greedy k-means++ and Lloyd to scikit-learn's stopping rule.
The figures and the decision are in docs/tasks.md ("K-means").

Data: ``XLINGBENCH_BENCH_VECTORS`` names a saved ``.npy`` matrix (e.g. one layer's word
occurrences of a CALIGN run); without it, word-occurrence-like vectors (``N`` x 384: types with
up to 15 occurrences each around the type's centre). ``K`` as CALIGN's default run (125).

    pip install faiss-cpu==1.15.1
    pytest benchmarks/bench_kmeans_faiss.py --benchmark-enable -s -n 0
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import pytest

faiss = pytest.importorskip("faiss")

N = int(os.environ.get("XLINGBENCH_BENCH_N", "4000"))
K = int(os.environ.get("XLINGBENCH_BENCH_K", "125"))
VECTORS = os.environ.get("XLINGBENCH_BENCH_VECTORS")
N_INIT, SEED = 10, 0
T = TypeVar("T")


@pytest.fixture(scope="module")
def occurrences() -> np.ndarray:
    """The saved matrix, or N word occurrences: N // 8 types, each seen 1-15 times, an
    occurrence its type's centre plus context noise (the shape of tasks 4-5's inputs)."""
    if VECTORS:
        return np.ascontiguousarray(np.load(VECTORS), dtype=np.float32)
    rng = np.random.default_rng(0)
    types = rng.normal(size=(N // 8, 384)).astype(np.float32)
    seen = np.repeat(np.arange(len(types)), rng.integers(1, 16, size=len(types)))[:N]
    return types[seen] + 0.6 * rng.normal(size=(len(seen), 384)).astype(np.float32)


def _timed(fn: Callable[[], T]) -> tuple[T, float, float]:
    """``fn()``, its wall seconds and this process's CPU seconds meanwhile (all threads)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def _faiss_labels(x: np.ndarray, threads: int, init: int, niter: int) -> tuple[np.ndarray, float]:
    """faiss k-means of ``x`` (10 starts, no subsampling) on ``threads`` OpenMP threads: the labels
    of its final centroids and their inertia, summed in float64 like ours."""
    faiss.omp_set_num_threads(threads)
    model = faiss.Kmeans(x.shape[1], K, niter=niter, nredo=N_INIT, seed=SEED + 1, spherical=False,
                         max_points_per_centroid=len(x), verbose=False)
    model.cp.init_method = init
    model.train(x)
    labels = model.index.search(x, 1)[1][:, 0]
    difference = x.astype(np.float64) - model.centroids[labels]
    return labels, float((difference * difference).sum())


def _ours(x: np.ndarray, threads: int) -> tuple[np.ndarray, float, int]:
    import torch

    from xlingbench.compute.kmeans import kmeans

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        result = kmeans(x, K, seed=SEED, n_init=N_INIT)
    finally:
        torch.set_num_threads(before)
    return result.labels, result.inertia, result.n_iter


def test_kmeans_against_faiss(benchmark, occurrences: np.ndarray) -> None:
    x = occurrences
    _ours(x[:1000], 1)  # warm-up: torch's thread pool and first allocations
    (labels, inertia, n_iter), wall, cpu = benchmark.pedantic(lambda: _timed(lambda: _ours(x, 2)), rounds=1, iterations=1)
    (labels_1, _, _), wall_1, cpu_1 = _timed(lambda: _ours(x, 1))
    rows = [("ours", 2, wall, cpu, 1.0, True, "-"), ("ours", 1, wall_1, cpu_1, 1.0, True, np.array_equal(labels, labels_1))]
    for name, init, niter in [("faiss random", 0, 300), ("faiss k-means++", 1, 300), ("faiss random", 0, n_iter)]:
        by_threads = {}
        for threads in (2, 1):
            (found, found_inertia), f_wall, f_cpu = _timed(lambda: _faiss_labels(x, threads, init, niter))
            again = _faiss_labels(x, threads, init, niter)[0]
            by_threads[threads] = found
            rows.append((f"{name}, {niter} it.", threads, f_wall, f_cpu, found_inertia / inertia,
                         np.array_equal(found, again), np.array_equal(found, by_threads[2]) if threads == 1 else "-"))
    print(f"\n{len(x)} x {x.shape[1]}, K={K}, {N_INIT} starts (ours: {n_iter} Lloyd iterations in its best start)")
    print(f"{'':26}threads   wall s   CPU s   inertia/ours   same seed twice   same on 1 and 2 threads")
    for name, threads, w, c, ratio, twice, across in rows:
        print(f"{name:26}{threads:7} {w:8.2f} {c:7.2f} {ratio:14.4f} {twice!s:>17} {across!s:>25}")
    benchmark.extra_info.update({"rows": [list(map(str, row)) for row in rows]})
    assert np.array_equal(labels, labels_1)  # ours: the same labels whatever the thread count
