"""Embedding read and task 2's neighbour search at the shapes of the models people evaluate now.

Random-weight checkpoints with real shapes but 2 layers, written as bfloat16 safetensors shards
(<= 1 GB, as published) with a tokenizer of the real vocabulary size:

    qwen2.5-0.5b   151,936 x 896    (tokenizer 151,665)
    xlm-r-base     250,002 x 768    (same V as Gemma, a third of its d: the d axis)
    gemma-2-2b     256,000 x 2304   (tokenizer 256,000)

Per shape: seconds and peak RSS (over the RSS before, as a multiple of the float32 matrix) of
(a) the embedding read (bf16 shards -> float32, ``dtype=auto``) and (b) task 2's neighbour
phase: unit-normalising the vocabulary and the exact top-``neighbours`` search (task 2's default
50) for a seeded sample of ``XLINGBENCH_BENCH_QUERIES`` queries (default 256; the task's 1% is
1.5k-2.6k). ``ns_per_element`` = seconds / (V x d): flat across shapes means linear in V x d.
``XLINGBENCH_BENCH_SHAPES`` picks shapes (comma-separated names). Run:
``python -m pytest benchmarks/bench_shapes.py --benchmark-enable -p no:cacheprovider -s``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.bench_loading import PEAK_BUDGET, measure
from xlingbench.compute.neighbours import top_k_neighbours
from xlingbench.inputs.registry import ModelSpec
from xlingbench.inputs.sources import PretrainedSource
from xlingbench.inputs.vocab import Vocabulary, build_vocabulary
from tests.tiny_models import shaped_checkpoint

QUERIES = int(os.environ.get("XLINGBENCH_BENCH_QUERIES", 256))
NEIGHBOURS = 50


def _qwen() -> Any:
    from transformers import Qwen2Config

    return Qwen2Config(vocab_size=151_936, hidden_size=896, intermediate_size=4864, num_hidden_layers=2,
                       num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True), 151_665


def _xlmr() -> Any:
    from transformers import XLMRobertaConfig

    return XLMRobertaConfig(vocab_size=250_002, num_hidden_layers=2), 250_002


def _gemma() -> Any:
    from transformers import Gemma2Config

    return Gemma2Config(vocab_size=256_000, hidden_size=2304, intermediate_size=9216, num_hidden_layers=2,
                        num_attention_heads=8, num_key_value_heads=4, head_dim=256), 256_000


SHAPES = {"qwen2.5-0.5b": _qwen, "xlm-r-base": _xlmr, "gemma-2-2b": _gemma}
CHOSEN = os.environ.get("XLINGBENCH_BENCH_SHAPES", ",".join(SHAPES)).split(",")


@pytest.fixture(scope="module", params=CHOSEN)
def checkpoint(request, tmp_path_factory) -> tuple[str, Path]:
    config, tokenizer_size = SHAPES[request.param]()
    folder = shaped_checkpoint(tmp_path_factory.mktemp(request.param) / "model", config, tokenizer_size)
    yield request.param, folder
    for path in folder.iterdir():  # free the disk before the next shape is written
        path.unlink()


def _source(folder: Path) -> PretrainedSource:
    return PretrainedSource(ModelSpec(name="bench", hub_id=str(folder)), "main")


def _record(benchmark, shape: str, phase: str, matrix: np.ndarray, seconds: float, peak: int) -> None:
    rows, dim = matrix.shape
    benchmark.extra_info.update(shape=shape, V=rows, d=dim, seconds=round(seconds, 3), peak_x_matrix=round(peak / matrix.nbytes, 3),
                                ns_per_element=round(seconds / (rows * dim) * 1e9, 3))
    print(f"\n{phase:10s} {shape:13s} {rows:>7,} x {dim:<5} {seconds:7.2f} s  {seconds / (rows * dim) * 1e9:6.2f} ns/elem  "
          f"peak {peak / matrix.nbytes:4.2f}x of {matrix.nbytes >> 20} MB")


def test_embedding_read(benchmark, checkpoint):
    shape, folder = checkpoint
    benchmark.pedantic(lambda: _source(folder).load_embedding_matrix("auto").shape, rounds=1, iterations=1)
    matrix, seconds, peak = measure(lambda: _source(folder).load_embedding_matrix("auto"))  # warm: imports done
    _record(benchmark, shape, "read", matrix, seconds, peak)
    size = matrix.nbytes
    del matrix
    assert peak <= PEAK_BUDGET * size


def test_neighbours(benchmark, checkpoint):
    shape, folder = checkpoint
    source = _source(folder)
    vocabulary = build_vocabulary(source.load_tokenizer(), source.load_embedding_matrix("auto"), shape)
    queries = np.sort(np.random.default_rng(150).choice(len(vocabulary), QUERIES, replace=False))

    def search(fresh: Vocabulary) -> np.ndarray:
        return top_k_neighbours(fresh.unit_embeddings, queries, NEIGHBOURS)[0]

    ids, seconds, peak = measure(lambda: search(_fresh(vocabulary)))
    _record(benchmark, shape, "neighbours", vocabulary.embeddings, seconds, peak)
    assert ids.shape == (QUERIES, NEIGHBOURS)
    benchmark.pedantic(search, setup=lambda: ((_fresh(vocabulary),), {}), rounds=1, iterations=1)


def _fresh(vocabulary: Vocabulary) -> Vocabulary:
    """The vocabulary without its unit rows, so each search pays for normalising as task 2's first one does."""
    return Vocabulary(vocabulary.model_id, vocabulary.tokens, vocabulary.embeddings, vocabulary.special_ids, vocabulary.style)
