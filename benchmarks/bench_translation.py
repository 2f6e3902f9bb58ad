"""Task 3's ranking (``pair_best_ranks``) vs a straightforward per-pair implementation, same process.

The baseline is what task 3 did before: for each pair on its own, the similarity rows of that
pair's queries (chunked matmul, variants masked), then for each query in a Python loop the
count of rows above its best target. Ours ranks each distinct query once for all pairs, all
queries of a chunk at once. Both must give the same ranks (checked). Planted workload, shaped
like MUSE de/fr/es/ru/zh/ja/ar/hi on multilingual-e5-small (18,425 queries over 5,078 distinct
words: 3.6 pairs per word), scaled down for time: ``XLINGBENCH_BENCH_PAIRS`` pairs (default 8)
of ``XLINGBENCH_BENCH_QUERIES`` queries (default 700) drawn from a shared pool of
``XLINGBENCH_BENCH_POOL`` English words (default 1,500), 1-3 targets and 1-4 variants a query,
over ``XLINGBENCH_BENCH_V`` rows x 384 (default 250,000). Goal: ``speedup >= 3``.

Run: ``pytest benchmarks/bench_translation.py --benchmark-enable -p no:cacheprovider -s``.
"""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from xlingbench.tasks.translation_in_neighbours import Queries, pair_best_ranks

V = int(os.environ.get("XLINGBENCH_BENCH_V", 250_000))
PAIRS = int(os.environ.get("XLINGBENCH_BENCH_PAIRS", 8))
QUERIES = int(os.environ.get("XLINGBENCH_BENCH_QUERIES", 700))
POOL = int(os.environ.get("XLINGBENCH_BENCH_POOL", 1_500))
DIM = 384
CHUNK = 1024  # the old default chunk


@pytest.fixture(scope="module")
def unit() -> np.ndarray:
    rows = np.random.default_rng(0).standard_normal((V, DIM), dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def pairs() -> list[Queries]:
    rng = np.random.default_rng(1)
    pool = rng.choice(V, size=POOL, replace=False)
    variants = {int(q): np.append(rng.choice(V, size=rng.integers(0, 4), replace=False), q) for q in pool}
    built = []
    for _ in range(PAIRS):
        chosen = np.sort(rng.choice(pool, size=QUERIES, replace=False))
        built.append(Queries(words=[str(q) for q in chosen], query_ids=chosen.tolist(),
                             targets=[np.sort(rng.choice(V, size=rng.integers(1, 4), replace=False)) for _ in chosen],
                             variants=[variants[int(q)] for q in chosen]))
    return built


def per_pair_loop(unit: np.ndarray, pairs: list[Queries]) -> list[np.ndarray]:
    """The straightforward way: every pair alone, every query's rank in a Python loop."""
    import torch

    matrix = torch.from_numpy(unit)
    out = []
    for queries in pairs:
        ranks = []
        for start in range(0, len(queries.query_ids), CHUNK):
            rows = queries.query_ids[start : start + CHUNK]
            sims = matrix[torch.as_tensor(rows)] @ matrix.T
            chunk = zip(queries.targets[start : start + CHUNK], queries.variants[start : start + CHUNK])
            for n, (targets, variants) in enumerate(chunk):
                best = sims[n, torch.as_tensor(targets)].max()
                sims[n, torch.as_tensor(variants)] = -np.inf
                ranks.append(int((sims[n] > best).sum()) + 1)
        out.append(np.array(ranks))
    return out


def test_pair_ranking_against_per_pair_loop(benchmark, unit: np.ndarray, pairs: list[Queries]) -> None:
    durations: list[float] = []

    def baseline() -> None:
        start = time.perf_counter()
        baseline.ranks = per_pair_loop(unit, pairs)
        durations.append(time.perf_counter() - start)

    ours: list[float] = []

    def timed() -> list[np.ndarray]:
        start = time.perf_counter()
        ranks = pair_best_ranks(unit, pairs)
        ours.append(time.perf_counter() - start)
        return ranks

    ranks = benchmark.pedantic(timed, setup=baseline, rounds=2, iterations=1)
    for got, want in zip(ranks, baseline.ranks):
        np.testing.assert_array_equal(got, want)
    distinct = len({q for p in pairs for q in p.query_ids})
    benchmark.extra_info.update(per_pair_s=min(durations), ours_s=min(ours), speedup=min(durations) / min(ours),
                                queries=PAIRS * QUERIES, distinct_queries=distinct)
    print(benchmark.extra_info)
