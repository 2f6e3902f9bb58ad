"""fast_align (xlingbench.compute.fast_align, both directions) against eflomal (both directions)
on the same corpora, eflomal timed in the same process as the baseline when it is installed.

Corpora: PUD en-de (1,000 sentence pairs, ../shared/data) and a synthetic corpus of noisy
word-for-word translations with PUD-like lengths (5-40 words, Zipfian vocabulary of 30,000).
Its size is ``XLB_BENCH_ALIGN_PAIRS`` (default 100,000; a smaller size for a busy machine,
the time then scaling about linearly with the number of cells, sum of m·n).

    pytest benchmarks/bench_fast_align.py --benchmark-enable -s
"""
from __future__ import annotations

import os
import time
from typing import Callable

import numpy as np

from xlingbench.compute.fast_align import align

SYNTHETIC_PAIRS = int(os.environ.get("XLB_BENCH_ALIGN_PAIRS", "100000"))
Corpus = tuple[list[list[str]], list[list[str]]]


def synthetic_corpus(n_pairs: int, seed: int = 0) -> Corpus:
    """Target = translated source words, a fifth of them shuffled locally, some dropped or added."""
    rng = np.random.default_rng(seed)
    src, tgt = [], []
    for _ in range(n_pairs):
        words = rng.zipf(1.2, size=rng.integers(5, 41)) % 30_000
        kept = words[rng.random(len(words)) > 0.1]
        order = np.argsort(np.arange(len(kept)) + rng.normal(scale=1.0, size=len(kept)))
        src.append([f"s{w}" for w in words])
        tgt.append([f"t{w}" for w in kept[order]] + [f"t{w}" for w in rng.integers(0, 30_000, size=rng.integers(0, 3))])
    return src, tgt


def eflomal_or_none() -> Callable[[list[list[str]], list[list[str]]], object] | None:
    try:
        import eflomal  # noqa: F401
    except ImportError:
        return None
    from xlingbench.inputs.alignment import eflomal_align

    return eflomal_align


def compare(benchmark, corpus: Corpus) -> None:
    """Time fast_align under pytest-benchmark and eflomal once beside it; print and store the ratio."""
    src, tgt = corpus
    cells = sum(len(s) * len(t) for s, t in zip(src, tgt))
    forward, _ = benchmark.pedantic(lambda: align(src, tgt), rounds=1, iterations=1)
    ours_s = benchmark.stats.stats.mean
    info = {"pairs": len(src), "cells": cells, "fast_align_s": ours_s, "links": len(forward.links)}
    eflomal = eflomal_or_none()
    if eflomal is not None:
        started = time.perf_counter()
        eflomal(src, tgt)
        eflomal_s = time.perf_counter() - started
        info.update(eflomal_s=eflomal_s, speedup=eflomal_s / ours_s)
    benchmark.extra_info.update(info)
    print("\n" + "  ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in info.items()))
    assert len(forward.links) > 0.5 * sum(map(len, tgt))


def test_fast_align_on_pud_en_de(benchmark, shared_data) -> None:
    src, tgt = ([line.split() for line in (shared_data / "pud" / f"pud.{lang}.tok").read_text(encoding="utf-8").splitlines()]
                for lang in ("en", "de"))
    compare(benchmark, (src, tgt))


def test_fast_align_on_a_synthetic_corpus(benchmark) -> None:
    compare(benchmark, synthetic_corpus(SYNTHETIC_PAIRS))
