"""Word-vector extraction with two batches' forward passes side by side against one batch at a
time, each pass on one torch thread (what keeps the numbers the same on any number of cores),
same sentences, same process, the same numbers: the gain of running passes side by side.

Data: the sentences of ``bench_extraction.py`` (../shared/data/pud, 200 English sentences) on the
offline multilingual-e5-small, with two torch threads (a 2-core machine). Wall and CPU seconds are
stored: on a loaded machine intra-op threads wait at a barrier per operation for a descheduled
thread, which side-by-side passes never do.

Run: ``pytest benchmarks/bench_extraction_side_by_side.py --benchmark-enable -s -p no:cacheprovider``.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from benchmarks.bench_extraction import e5_source, fresh, sentences  # noqa: F401 - fixtures and the loaded model
from xlingbench.inputs import word_vectors


def _extract(source: Any, root: Path, words: list[list[str]], batches_at_once: int) -> tuple[np.ndarray, float, float]:
    """Every stored layer of one extraction into an empty cache, and its wall and CPU seconds."""
    reps = fresh(source, root)
    before, saved = torch.get_num_threads(), word_vectors.PARALLEL_BATCHES
    torch.set_num_threads(2)
    word_vectors.PARALLEL_BATCHES = batches_at_once
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        vectors = reps.extract_vectors(words, language="en")
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        torch.set_num_threads(before)
        word_vectors.PARALLEL_BATCHES = saved
    return np.stack([np.asarray(vectors.layer(layer)) for layer in vectors.stored_layers]), wall, cpu


def test_batches_side_by_side_against_one_at_a_time(benchmark: Any, e5_source: Any, sentences: list[list[str]],
                                                     tmp_path: Path) -> None:
    _extract(e5_source, tmp_path / "warm", sentences[:20], 1)  # first calls timed in neither
    alone, alone_wall, alone_cpu = _extract(e5_source, tmp_path / "one", sentences, 1)
    apart, apart_wall, apart_cpu = benchmark.pedantic(lambda: _extract(e5_source, tmp_path / "two", sentences, 2),
                                                      rounds=1, iterations=1)
    benchmark.extra_info.update(sentences=len(sentences), one_at_a_time_s=alone_wall, one_at_a_time_cpu_s=alone_cpu,
                                side_by_side_s=apart_wall, side_by_side_cpu_s=apart_cpu, speedup=alone_wall / apart_wall)
    print(f"\n{len(sentences)} sentences: one batch at a time {alone_wall:.1f}s ({alone_cpu:.1f}s CPU)  side by side "
          f"{apart_wall:.1f}s ({apart_cpu:.1f}s CPU)  speedup x{alone_wall / apart_wall:.2f}  load {os.getloadavg()[0]:.1f}")
    np.testing.assert_array_equal(apart, alone)  # the same numbers, bit for bit
