"""Tasks 1-3 and word-vector extraction at the shapes of the models people evaluate now.

Random-weight checkpoints with real shapes but 2 layers, written as bfloat16 safetensors shards
(<= 1 GB, as published) with a tokenizer of the real vocabulary size whose pieces are drawn from
a multilingual vocabulary's scripts (``tests.tiny_models.scripted_pieces``: Latin half, then CJK,
Cyrillic, Arabic, Hangul, Devanagari, Greek, Hebrew, Thai, digits, punctuation):

    qwen2.5-0.5b   151,936 x 896    (tokenizer 151,665)
    xlm-r-base     250,002 x 768    (same V as Gemma, a third of its d: the d axis)
    gemma-2-2b     256,000 x 2304   (tokenizer 256,000)

Per shape, seconds and peak RSS (over the RSS before, as a multiple of the matrix as tasks 1-3 hold it:
in the checkpoint's bfloat16; ``read``: of the float32 matrix it returns) of

- ``read``: the embedding read (bf16 shards -> float32, ``dtype=auto``);
- ``neighbours``: task 2's neighbour phase as ``Representations.neighbours`` runs it: the exact
  top-``neighbours`` search (task 2's default 50) over the vocabulary as held, its rows normalised a
  block at a time (``normalise=True``, no unit copy), for a seeded sample of ``XLINGBENCH_BENCH_QUERIES``
  queries (default 256; the task's 1% is 1.5k-2.6k);
- ``separability``: task 1's ``run`` (labels, unit rows, the probe per category, all folds) with
  ``XLINGBENCH_BENCH_FOLDS`` folds (default 10, the task's) on a seeded ``XLINGBENCH_BENCH_SHARE``
  of the vocabulary (default 1.0, passed as the task's ``tokens`` list): the probe gathers each
  group of categories' rows into one copy in the matrix's bfloat16 (at most the largest category's
  balanced sample), which the fit normalises a chunk at a time as it reads it; it used to copy every
  category's rows at once, twice (about 6x the matrix), then into one float32 copy (2x);
- ``translation``: task 3's ``run`` over a planted dictionary of the tokenizer's own word-start
  pieces, shaped like MUSE's eight pairs (de/fr/es Latin, ru, zh, ar, hi, ko): ``PER_PAIR`` queries
  a pair drawn from ``POOL`` English (Latin) words, 1-3 translations each, ranked over the whole
  vocabulary;
- ``extract``: ``Representations.word_vectors`` (every layer, float16 memmaps) on the 2-layer
  network for each of ``XLINGBENCH_BENCH_SENTENCES`` corpus sizes (default 200,800 sentences of
  8-24 words drawn from the vocabulary's word-start pieces): words and subwords per second (Qwen's
  tokenizer is byte-level without merges here, so a subword is a byte), peak RSS over the loaded
  model (the written output pages count in it) and peak anonymous memory, which streaming keeps
  flat as the corpus grows.

``test_probe_memory_in_model_dtype``: task 1's probe (:func:`separability`, ``XLINGBENCH_BENCH_FOLDS``
folds) on a random matrix in the model's own dtype, no checkpoint: multilingual-e5-small (250,037 x
384, float32), Gemma-2-2B (256,000 x 2304, bfloat16) and an 8B shape (Llama-3-8B: 128,256 x 4096,
bfloat16), labels planted like the tokenizers' (Latin half, ten other scripts share the rest): the
matrix plus the probe's peak RSS over it, as a multiple of the matrix (goal: at most 3x, beside the
fixed cost of interpreter and libraries, printed). ``XLINGBENCH_BENCH_MATRICES`` picks them
(comma-separated names).

``test_neighbour_memory_in_model_dtype``: tasks 2-3's similarity work on the same random matrices,
held as the model holds it (``model``: its own dtype) or as ``Vocabulary`` holds it (``float32``):
task 2's exact top-50 for ``XLINGBENCH_BENCH_QUERIES`` queries and task 3's ranks of 1-3 targets a
query, each measured on its own, both with ``normalise=True`` (rows normalised a block at a time, no
unit copy of the whole vocabulary). Each one's peak RSS over the matrix (working memory), and the
total with the matrix as held, as multiples of the matrix in the model's dtype (goal: total at most
3x, beside the fixed cost).

``ns_per_element`` = seconds / (scored rows x d): flat across shapes means linear in V x d; the
summary at the end lists it per phase and shape (extraction: microseconds per word).
``XLINGBENCH_BENCH_SHAPES`` picks shapes (comma-separated names). Run:
``python -m pytest benchmarks/bench_shapes.py --benchmark-enable -p no:cacheprovider -s``.
"""
from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from benchmarks.bench_extraction import fresh
from benchmarks.bench_loading import PEAK_BUDGET, _status_kib, measure
from tests.tiny_models import shaped_checkpoint
from xlingbench.compute.categories import label_vocabulary, paper_category
from xlingbench.compute.neighbours import best_target_ranks, top_k_neighbours
from xlingbench.compute.separability import separability
from xlingbench.compute.surface import WORD_START
from xlingbench.inputs.dictionaries import load_dictionaries
from xlingbench.inputs.parallel_data import ParallelCorpus
from xlingbench.inputs.registry import ModelSpec
from xlingbench.inputs.representations import ExtractionSettings
from xlingbench.inputs.sources import PretrainedSource, resolve_dtype
from xlingbench.inputs.held_matrix import held_matrix
from xlingbench.inputs.vocab import Vocabulary, build_vocabulary
from xlingbench.tasks import script_separability, translation_in_neighbours

QUERIES = int(os.environ.get("XLINGBENCH_BENCH_QUERIES", "256"))
NEIGHBOURS = 50
FOLDS = int(os.environ.get("XLINGBENCH_BENCH_FOLDS", "10"))
SHARE = float(os.environ.get("XLINGBENCH_BENCH_SHARE", "1"))
SENTENCES = [int(n) for n in os.environ.get("XLINGBENCH_BENCH_SENTENCES", "200,800").split(",")]
#: task 3's planted dictionaries: target language -> the paper category of its translations
PAIRS = {"de": "LATIN", "fr": "LATIN", "es": "LATIN", "ru": "CYRILLIC", "zh": "CJK", "ar": "ARABIC",
         "hi": "DEVANAGARI", "ko": "HANGUL"}
POOL, PER_PAIR = 2_500, 700


def _qwen() -> Any:
    from transformers import Qwen2Config

    return Qwen2Config(vocab_size=151_936, hidden_size=896, intermediate_size=4864, num_hidden_layers=2,
                       num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True), 151_665, True


def _xlmr() -> Any:
    from transformers import XLMRobertaConfig

    return XLMRobertaConfig(vocab_size=250_002, num_hidden_layers=2), 250_002, False


def _gemma() -> Any:
    from transformers import Gemma2Config

    return Gemma2Config(vocab_size=256_000, hidden_size=2304, intermediate_size=9216, num_hidden_layers=2,
                        num_attention_heads=8, num_key_value_heads=4, head_dim=256), 256_000, False


#: name -> (rows, width, dtype) of the embedding matrices the probe's memory is measured at
MATRICES = {"e5-small": (250_037, 384, "float32"), "gemma-2-2b": (256_000, 2304, "bfloat16"),
            "llama-3-8b": (128_256, 4096, "bfloat16")}
PROBE_BUDGET = 3.0  # peak RSS over the matrix, as a multiple of the matrix in its own dtype
#: name -> () -> (config, tokenizer entries, byte-level tokenizer as the model's own)
SHAPES = {"qwen2.5-0.5b": _qwen, "xlm-r-base": _xlmr, "gemma-2-2b": _gemma}
CHOSEN = os.environ.get("XLINGBENCH_BENCH_SHAPES", ",".join(SHAPES)).split(",")


@pytest.fixture(scope="module")
def growth() -> dict[str, dict[str, str]]:
    """phase -> shape -> cost per unit of work, printed as one table when the module ends."""
    table: dict[str, dict[str, str]] = {}
    yield table
    print("\n\ngrowth (flat across shapes = linear in V x d):")
    for phase, row in table.items():
        print(f"  {phase:12s} " + "  ".join(f"{shape} {cost}" for shape, cost in row.items()))


@pytest.fixture(scope="module", params=CHOSEN)
def checkpoint(request, tmp_path_factory) -> tuple[str, Path]:
    config, tokenizer_size, byte_level = SHAPES[request.param]()
    folder = shaped_checkpoint(tmp_path_factory.mktemp(request.param) / "model", config, tokenizer_size, byte_level=byte_level)
    yield request.param, folder
    for path in folder.iterdir():  # free the disk before the next shape is written
        path.unlink()


@pytest.fixture(scope="module")
def vocabulary(checkpoint) -> Vocabulary:
    """The shape's vocabulary, its matrix held as tasks 1-3 hold it (the checkpoint's bfloat16), read once
    for them (their load phase is ``read``)."""
    shape, folder = checkpoint
    source = _source(folder)
    dtype = resolve_dtype(source, "auto")
    return build_vocabulary(source.load_tokenizer(), held_matrix(source.load_stored_embedding_matrix(dtype), dtype), shape)


def _source(folder: Path) -> PretrainedSource:
    return PretrainedSource(ModelSpec(name="bench", hub_id=str(folder)), "main")


def _record(benchmark, growth: dict, shape: str, phase: str, matrix: np.ndarray, seconds: float, peak: int,
            rows: int | None = None) -> None:
    """Store and print one phase's figures; ``rows`` scored (default all) x d is the work it grows with."""
    dim = matrix.shape[1]
    rows = matrix.shape[0] if rows is None else rows
    ns = seconds / (rows * dim) * 1e9
    benchmark.extra_info.update(shape=shape, V=matrix.shape[0], rows=rows, d=dim, seconds=round(seconds, 3),
                                peak_x_matrix=round(peak / matrix.nbytes, 3), ns_per_element=round(ns, 3))
    growth.setdefault(phase, {})[shape] = f"{ns:7.2f} ns/elem"
    print(f"\n{phase:12s} {shape:13s} {rows:>7,} x {dim:<5} {seconds:7.2f} s  {ns:6.2f} ns/elem  "
          f"peak {peak / matrix.nbytes:4.2f}x of {matrix.nbytes >> 20} MB")


def _fresh(vocabulary: Vocabulary) -> Vocabulary:
    """The vocabulary without its unit rows, so each run pays for normalising as a task's first one does."""
    return Vocabulary(vocabulary.model_id, vocabulary.tokens, vocabulary.embeddings, vocabulary.special_ids, vocabulary.style)


def _inputs(vocabulary: Vocabulary, dictionaries: Path | None = None) -> SimpleNamespace:
    """What tasks 1 and 3 read from Representations, over a vocabulary held here: no cache entry, whose
    writing (2.4 GB for Gemma) would be timed as the task's."""
    return SimpleNamespace(vocabulary=_fresh(vocabulary), device="cpu", model_id=vocabulary.model_id,
                           dictionaries=lambda spec, targets: load_dictionaries(spec, dictionaries, targets))


def test_embedding_read(benchmark, checkpoint, growth):
    shape, folder = checkpoint
    benchmark.pedantic(lambda: _source(folder).load_embedding_matrix("auto").shape, rounds=1, iterations=1)
    matrix, seconds, peak = measure(lambda: _source(folder).load_embedding_matrix("auto"))  # warm: imports done
    _record(benchmark, growth, shape, "read", matrix, seconds, peak)
    size = matrix.nbytes
    del matrix
    assert peak <= PEAK_BUDGET * size


def test_neighbours(benchmark, checkpoint, vocabulary, growth):
    shape, _ = checkpoint
    queries = np.sort(np.random.default_rng(150).choice(len(vocabulary), QUERIES, replace=False))

    def search(fresh_vocabulary: Vocabulary) -> np.ndarray:
        return top_k_neighbours(fresh_vocabulary.embeddings, queries, NEIGHBOURS, normalise=True)[0]

    ids, seconds, peak = measure(lambda: search(_fresh(vocabulary)))
    _record(benchmark, growth, shape, "neighbours", vocabulary.embeddings, seconds, peak)
    assert ids.shape == (QUERIES, NEIGHBOURS)
    benchmark.pedantic(search, setup=lambda: ((_fresh(vocabulary),), {}), rounds=1, iterations=1)


def test_script_separability(benchmark, checkpoint, vocabulary, growth, tmp_path):
    """Task 1 on random rows: the scripts are planted in the token strings, not in the embeddings,
    so every probe must score chance (0.5) on held-out rows."""
    shape, _ = checkpoint
    tokens = np.sort(np.random.default_rng(150).permutation(len(vocabulary))[: round(SHARE * len(vocabulary))])
    listed = tmp_path / "tokens.txt"
    listed.write_text("\n".join(vocabulary.tokens[i] for i in tokens if vocabulary.tokens[i]), encoding="utf-8")
    params = script_separability.Params(folds=FOLDS, tokens=str(listed) if SHARE < 1 else "")
    result, seconds, peak = benchmark.pedantic(
        measure, args=(lambda: script_separability.run(_inputs(vocabulary), params),), rounds=1, iterations=1)
    _record(benchmark, growth, shape, "separability", vocabulary.embeddings, seconds, peak, rows=len(tokens))
    counts = Counter(label_vocabulary([vocabulary.tokens[i] for i in tokens], "paper", ()))
    scored = sorted(c for c, n in counts.items() if n >= params.min_tokens)
    benchmark.extra_info.update(folds=FOLDS, share=SHARE, categories=len(scored), accuracy=round(result.metrics["accuracy"], 4),
                                unconverged_fits=result.info["unconverged_fits"])
    assert sorted(k.split("/")[1] for k in result.metrics if k.startswith("accuracy/")) == scored
    assert abs(result.metrics["accuracy"] - 0.5) < 0.03


def _planted_dictionaries(vocabulary: Vocabulary, folder: Path) -> Path:
    """MUSE-format en-X files pairing the vocabulary's own word-start pieces: English words are Latin
    pieces, each pair's translations (1-3) pieces of its script, so every query is scorable."""
    rng = np.random.default_rng(150)
    starts = [t[1:] for t in vocabulary.tokens if t.startswith(WORD_START) and len(t) > 2]
    by_script: dict[str, list[str]] = {}
    for word in starts:
        by_script.setdefault(paper_category(word), []).append(word)
    english = rng.choice(by_script["LATIN"], POOL, replace=False)
    folder.mkdir()
    for language, script in PAIRS.items():
        lines = [f"{word} {translation}" for word in rng.choice(english, PER_PAIR, replace=False)
                 for translation in rng.choice(by_script[script], rng.integers(1, 4), replace=False)]
        (folder / f"en-{language}.txt").write_text("\n".join(lines), encoding="utf-8")
    return folder


def test_translation_in_neighbours(benchmark, checkpoint, vocabulary, growth, tmp_path):
    """Task 3 on random rows: a query's best of k random translations ranks at V / (k + 1) on average,
    so with k uniform on 1-3 the mean best rank is (1/2 + 1/3 + 1/4) / 3 = 0.361 of the vocabulary."""
    shape, _ = checkpoint
    folder = _planted_dictionaries(vocabulary, tmp_path / "dictionaries")
    params = translation_in_neighbours.Params(dictionary=str(folder))
    result, seconds, peak = benchmark.pedantic(
        measure, args=(lambda: translation_in_neighbours.run(_inputs(vocabulary, folder), params),), rounds=1, iterations=1)
    _record(benchmark, growth, shape, "translation", vocabulary.embeddings, seconds, peak)
    queries = sum(int(result.metrics[f"queries/en-{language}"]) for language in PAIRS)
    benchmark.extra_info.update(queries=queries, hit_at_10=result.metrics["hit_at_10"], mean_rank=round(result.metrics["mean_rank"]))
    print(f"             {queries:,} queries, hit@10 {result.metrics['hit_at_10']:.4f}, mean rank {result.metrics['mean_rank']:,.0f}")
    assert queries == len(PAIRS) * PER_PAIR
    assert abs(result.metrics["mean_rank"] / len(vocabulary) - 0.361) < 0.02


def _corpus(vocabulary: Vocabulary, sentences: int) -> ParallelCorpus:
    """``sentences`` of 8-24 words, each a word-start piece of the vocabulary (one subword a word).

    A larger corpus repeats the smallest one's sentences: the longest batch (whose activations set
    the peak, quadratically in length under eager attention) is then the same at every size, so
    any growth of the peak is the corpus's own, which streaming must keep flat."""
    rng = np.random.default_rng(150)
    words = np.array([t[1:] for t in vocabulary.tokens if t.startswith(WORD_START) and len(t) > 1])
    base = [list(rng.choice(words, rng.integers(8, 25))) for _ in range(min(SENTENCES))]
    text = [base[i % len(base)] for i in range(sentences)]
    return ParallelCorpus(languages=["xx"], sentences={"xx": text}, fingerprint=f"planted-{sentences}", source="planted",
                          word_tokenizer="whitespace", dropped_long=0)


def _anonymous_peak(fn: Callable[[], Any]) -> tuple[Any, int]:
    """``fn()``'s result and its peak anonymous memory (``RssAnon``, sampled every 2 ms) above the value before.

    Why besides ``measure``'s RSS: that counts the written pages of the output memmaps too, file
    pages the kernel writes back and drops; the memory extraction itself holds is the anonymous part."""
    before, samples, stop = _status_kib("RssAnon"), [], threading.Event()

    def sample() -> None:
        while not stop.wait(0.002):
            samples.append(_status_kib("RssAnon"))

    thread = threading.Thread(target=sample)
    thread.start()
    try:
        result = fn()
    finally:
        stop.set()
        thread.join()
    return result, (max(samples, default=before) - before) << 10


def _extract(folder: Path, corpus: ParallelCorpus, root: Path) -> dict[str, float]:
    """One extraction of ``corpus`` into an empty cache under ``root``: words, subwords, seconds, peak RSS,
    peak anonymous memory and output size (Qwen's byte-level tokenizer has no merges here: a subword a byte)."""
    reps = fresh(_source(folder), root)
    (vectors, anonymous), seconds, peak = measure(lambda: _anonymous_peak(lambda: reps.word_vectors(corpus, "xx", ExtractionSettings())))
    words = len(vectors.words)
    subwords = sum(len(ids) for ids in reps.tokenizer(corpus.texts["xx"], add_special_tokens=False)["input_ids"])
    stored = words * vectors.num_layers * vectors.layer(0).shape[1] * 2
    return {"words": words, "subwords": subwords, "seconds": round(seconds, 2), "words_per_second": round(words / seconds, 1),
            "subwords_per_second": round(subwords / seconds, 1), "peak_mb": peak >> 20, "anonymous_peak_mb": anonymous >> 20,
            "vectors_mb": stored >> 20}


def test_extraction(benchmark, checkpoint, vocabulary, growth, tmp_path):
    """Words per second and peak memory of extraction into an empty cache, per corpus size (the model
    is loaded first, untimed); streaming to float16 memmaps keeps the anonymous peak flat as the corpus
    grows: it may grow by the longest batch's activations, not by the vectors (a corpus held in memory would)."""
    shape, folder = checkpoint
    figures = {}
    for sentences in sorted(SENTENCES):
        extract = lambda n=sentences: _extract(folder, _corpus(vocabulary, n), tmp_path / f"cache{n}")
        figures[sentences] = found = (benchmark.pedantic(extract, rounds=1, iterations=1) if sentences == max(SENTENCES)
                                      else extract())
        print(f"\nextract      {shape:13s} {sentences:>5} sentences {found['words']:>6,} words {found['seconds']:7.2f} s  "
              f"{found['words_per_second']:7.1f} words/s {found['subwords_per_second']:7.1f} subwords/s  peak {found['peak_mb']} MB, "
              f"anonymous {found['anonymous_peak_mb']} MB (float16 vectors {found['vectors_mb']} MB)")
    benchmark.extra_info.update(shape=shape, **{f"sentences_{n}": f for n, f in figures.items()})
    smallest, largest = figures[min(SENTENCES)], figures[max(SENTENCES)]
    growth.setdefault("extract", {})[shape] = f"{1e6 / largest['words_per_second']:7.0f} us/word"
    assert largest["words"] == sum(len(s) for s in _corpus(vocabulary, max(SENTENCES)).sentences["xx"])
    assert largest["anonymous_peak_mb"] - smallest["anonymous_peak_mb"] <= 0.5 * (largest["vectors_mb"] - smallest["vectors_mb"]) + 32


@pytest.mark.parametrize("name", os.environ.get("XLINGBENCH_BENCH_MATRICES", ",".join(MATRICES)).split(","))
def test_probe_memory_in_model_dtype(benchmark, name):
    """Task 1's probe on a matrix in the model's own dtype: one copy per group of categories, float32
    rows from a float32 matrix, rows as they are from a bfloat16 one (the fit normalises them a chunk
    at a time as it reads them), so the peak stays within ``PROBE_BUDGET`` x the matrix."""
    import torch

    rows, width, dtype = MATRICES[name]
    matrix = torch.randn(rows, width, generator=torch.Generator().manual_seed(150)).to(getattr(torch, dtype))
    others = ["CJK", "CYRILLIC", "ARABIC", "HANGUL", "DEVANAGARI", "GREEK", "HEBREW", "THAI", "DIGIT", "PUNCT"]
    labels = np.array(["LATIN"] * (rows // 2) + [others[i % len(others)] for i in range(rows - rows // 2)], dtype=object)
    size = matrix.element_size() * matrix.numel()
    fixed = _fixed_cost(size)
    found, seconds, peak = benchmark.pedantic(
        measure, args=(lambda: separability(matrix, labels, folds=FOLDS),), rounds=1, iterations=1)
    total = (size + peak) / size
    benchmark.extra_info.update(matrix=name, V=rows, d=width, dtype=dtype, seconds=round(seconds, 1), fixed_mb=fixed >> 20,
                                peak_x_matrix=round(peak / size, 3), total_x_matrix=round(total, 3),
                                accuracy=round(found.accuracy, 4))
    print(f"\nprobe        {name:13s} {rows:>7,} x {width:<5} {dtype:8s} {seconds:7.1f} s  working {peak / size:4.2f}x, "
          f"with the matrix {total:4.2f}x of {size >> 20} MB (+ fixed {fixed >> 20} MB)")
    assert abs(found.accuracy - 0.5) < 0.03  # random rows: every probe scores chance
    assert total <= PROBE_BUDGET


@pytest.mark.parametrize("held", ["model", "float32"])
@pytest.mark.parametrize("name", os.environ.get("XLINGBENCH_BENCH_MATRICES", ",".join(MATRICES)).split(","))
def test_neighbour_memory_in_model_dtype(benchmark, name, held):
    """Tasks 2-3's neighbours and ranks over a whole random matrix: every row is normalised a block at a
    time as the similarities need it, so the peak over the matrix is the query chunks' buffers."""
    import torch

    rows, width, dtype = MATRICES[name]
    matrix = torch.randn(rows, width, generator=torch.Generator().manual_seed(150)).to(getattr(torch, dtype))
    model_size = matrix.element_size() * matrix.numel()
    if held == "float32":
        matrix = matrix.float().numpy()
    rng = np.random.default_rng(150)
    queries = np.sort(rng.choice(rows, QUERIES, replace=False))
    groups = [[rng.choice(rows, rng.integers(1, 4), replace=False)] for _ in queries]

    held_size = matrix.nbytes if isinstance(matrix, np.ndarray) else model_size
    fixed = _fixed_cost(held_size)
    ids, seconds, peak = benchmark.pedantic(measure, args=(lambda: top_k_neighbours(matrix, queries, NEIGHBOURS, normalise=True)[0],),
                                            rounds=1, iterations=1)
    ranks, rank_seconds, rank_peak = measure(lambda: best_target_ranks(matrix, queries, groups, normalise=True))
    figures = {}
    for task, took, working in (("task2_top_k", seconds, peak), ("task3_ranks", rank_seconds, rank_peak)):
        figures[task] = total = (held_size + working) / model_size
        benchmark.extra_info[task] = {"seconds": round(took, 1), "working_x_matrix": round(working / model_size, 3),
                                      "total_x_matrix": round(total, 3)}
        print(f"\n{task:12s} {name:13s} {rows:>7,} x {width:<5} {dtype:8s} held {held:8s} {took:7.1f} s  "
              f"working {working / model_size:4.2f}x, with the matrix {total:4.2f}x of {model_size >> 20} MB (+ fixed {fixed >> 20} MB)")
    benchmark.extra_info.update(matrix=name, held=held, V=rows, d=width, dtype=dtype, fixed_mb=fixed >> 20)
    assert ids.shape == (QUERIES, NEIGHBOURS) and len(ranks) == QUERIES
    assert max(figures.values()) <= PROBE_BUDGET


def _fixed_cost(held: int) -> int:
    """The process's resident bytes beside the ``held`` matrix: interpreter, libraries, earlier work."""
    return max(0, (_status_kib("VmRSS") << 10) - held)
