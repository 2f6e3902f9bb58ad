"""Task 1's probe with its fits side by side (two torch threads: two fits at once, one thread each)
against one fit after another on one thread, same rows, same process, the same numbers.

Data: those of ``bench_separability.py`` (multilingual-e5-small's real unit input embeddings and
``paper`` labels, ``XLINGBENCH_BENCH_TOKENS`` of its tokens, default all 250,002), task 1's
defaults. CPU time is stored beside the wall time: on a shared machine the wall ratio says what
the second core gave, the CPU ratio what it cost.

Run: ``pytest benchmarks/bench_logreg_side_by_side.py --benchmark-enable -s -p no:cacheprovider``.
"""
from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch

from benchmarks.bench_separability import labelled  # noqa: F401 - the fixture: real rows and labels
from xlingbench.compute.separability import separability


def _probe(rows: np.ndarray, labels: np.ndarray, threads: int) -> tuple[list[np.ndarray], float, float]:
    """Fold accuracies of every category with ``threads`` torch threads, and the wall and CPU seconds."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        found = separability(rows, labels)
        return [s.fold_scores for s in found.scores], time.perf_counter() - wall, time.process_time() - cpu
    finally:
        torch.set_num_threads(before)


def test_fits_side_by_side_against_one_thread(benchmark, labelled: tuple[np.ndarray, np.ndarray]) -> None:
    rows, labels = labelled
    separability(rows[:5000], labels[:5000], min_tokens=50)  # first calls (LAPACK, thread pools) timed in neither
    alone, alone_wall, alone_cpu = _probe(rows, labels, threads=1)
    apart, apart_wall, apart_cpu = benchmark.pedantic(lambda: _probe(rows, labels, threads=2), rounds=1, iterations=1)
    benchmark.extra_info.update(tokens=len(rows), one_thread_s=alone_wall, one_thread_cpu_s=alone_cpu,
                                side_by_side_s=apart_wall, side_by_side_cpu_s=apart_cpu, speedup=alone_wall / apart_wall)
    print(f"\n{len(rows)} tokens: one thread {alone_wall:.1f}s ({alone_cpu:.1f}s CPU)  side by side {apart_wall:.1f}s "
          f"({apart_cpu:.1f}s CPU)  speedup x{alone_wall / apart_wall:.2f}  load {os.getloadavg()[0]:.1f}")
    assert all(np.array_equal(a, b) for a, b in zip(alone, apart, strict=True))  # the same numbers, bit for bit
