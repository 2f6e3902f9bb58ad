"""Exact chunked top-k neighbours vs a plain full matmul of the same shape, same process.

The baseline computes only ``Q x V`` similarities in one matmul (no top-k, no tie handling,
unbounded memory); the ratio says what exactness and bounded memory cost on top of the
unavoidable arithmetic. Size: ``XLINGBENCH_BENCH_Q`` queries x ``XLINGBENCH_BENCH_V`` rows x 384
(defaults 2,000 x 250,000: the query count of task 2's 1% sample of a 250k vocabulary, at
multilingual-e5-small's width).

Run: ``pytest benchmarks/bench_neighbours.py --benchmark-enable -p no:cacheprovider``.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from xlingbench.compute.neighbours import top_k_neighbours

Q = int(os.environ.get("XLINGBENCH_BENCH_Q", 2_000))
V = int(os.environ.get("XLINGBENCH_BENCH_V", 250_000))
DIM = 384
K = 50


@pytest.fixture(scope="module")
def unit() -> np.ndarray:
    rows = np.random.default_rng(0).standard_normal((V, DIM), dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def queries() -> np.ndarray:
    return np.sort(np.random.default_rng(1).choice(V, size=Q, replace=False))


def test_full_matmul_baseline(benchmark, unit: np.ndarray, queries: np.ndarray) -> None:
    import torch

    matrix = torch.from_numpy(unit)
    sims = benchmark.pedantic(lambda: matrix[torch.from_numpy(queries)] @ matrix.T, rounds=3, iterations=1)
    assert sims.shape == (Q, V)


def test_chunked_exact_top_k(benchmark, unit: np.ndarray, queries: np.ndarray) -> None:
    ids, _ = benchmark.pedantic(lambda: top_k_neighbours(unit, queries, K), rounds=3, iterations=1)
    assert ids.shape == (Q, K)
