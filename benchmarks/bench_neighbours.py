"""Exact top-k neighbours vs a bare matmul of the same shape, same process, interleaved rounds.

Baselines (timed in each round's untimed setup, so a burst of load on a shared machine hits
both sides alike): ``bare`` is ``matrix[queries] @ matrix.T`` into a fresh ``Q x V`` tensor (no
top-k, no exactness, unbounded memory: the goal is ``ratio_to_bare <= 1.25``); ``into_buffer`` is
the same product into a preallocated tensor, the arithmetic alone without the page faults of a
fresh 2 GB allocation. Reported in ``extra_info``: the min seconds of each over the rounds and
the ratios. Size: ``XLINGBENCH_BENCH_Q`` queries x ``XLINGBENCH_BENCH_V`` rows x 384 (defaults
2,000 x 250,000: the query count of task 2's 1% sample of a 250k vocabulary, at
multilingual-e5-small's width), ``XLINGBENCH_BENCH_ROUNDS`` rounds (default 3).

Run: ``pytest benchmarks/bench_neighbours.py --benchmark-enable -p no:cacheprovider -s``.
"""
from __future__ import annotations

import os
import time
from typing import Callable

import numpy as np
import pytest

from xlingbench.compute.neighbours import top_k_neighbours

Q = int(os.environ.get("XLINGBENCH_BENCH_Q", 2_000))
V = int(os.environ.get("XLINGBENCH_BENCH_V", 250_000))
ROUNDS = int(os.environ.get("XLINGBENCH_BENCH_ROUNDS", 3))
DIM = 384
K = 50


@pytest.fixture(scope="module")
def unit() -> np.ndarray:
    rows = np.random.default_rng(0).standard_normal((V, DIM), dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def queries() -> np.ndarray:
    return np.sort(np.random.default_rng(1).choice(V, size=Q, replace=False))


def _timed(fn: Callable[[], object], durations: list[float]) -> None:
    start = time.perf_counter()
    fn()
    durations.append(time.perf_counter() - start)


def test_exact_top_k_against_bare_matmul(benchmark, unit: np.ndarray, queries: np.ndarray) -> None:
    import torch

    matrix, rows = torch.from_numpy(unit), torch.from_numpy(queries)
    buffer = torch.empty((Q, V))
    bare: list[float] = []
    into_buffer: list[float] = []

    def baselines() -> None:
        _timed(lambda: matrix[rows] @ matrix.T, bare)
        _timed(lambda: torch.mm(matrix[rows], matrix.T, out=buffer), into_buffer)

    ours: list[float] = []
    benchmark.pedantic(lambda: _timed(lambda: top_k_neighbours(unit, queries, K), ours),
                       setup=baselines, rounds=ROUNDS, iterations=1)
    benchmark.extra_info.update(
        bare_s=min(bare), into_buffer_s=min(into_buffer), top_k_s=min(ours),
        ratio_to_bare=min(ours) / min(bare), ratio_to_into_buffer=min(ours) / min(into_buffer))
    print(benchmark.extra_info)
