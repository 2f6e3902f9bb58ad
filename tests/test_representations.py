"""Phase timing of a model's representations: phases are exclusive and add up to wall time."""
from __future__ import annotations

import time

from xlingbench.inputs.cache import Cache
from xlingbench.inputs.representations import Representations


class _Source:
    model_id, revision, arch, name = "m", "r", "encoder", "m"


def test_nested_phases_do_not_double_count(tmp_path):
    inputs = Representations(_Source(), Cache(tmp_path))
    start = time.perf_counter()
    with inputs.timed("extract"):
        time.sleep(0.05)
        with inputs.timed("load"):
            time.sleep(0.1)
            with inputs.timed("load"):
                time.sleep(0.02)
        time.sleep(0.05)
    wall = time.perf_counter() - start
    assert 0.1 <= inputs.timings["extract"] < 0.12 + 0.05
    assert 0.12 <= inputs.timings["load"] < 0.12 + 0.05
    assert sum(inputs.timings.values()) <= wall


def test_cache_keys_carry_model_revision_and_dtype(tmp_path):
    inputs = Representations(_Source(), Cache(tmp_path))
    assert inputs.key(layer=3) == {"model_id": "m", "revision": "r", "model_dtype": "float32", "device_kind": "cpu", "layer": 3}
    inputs.device = "cuda:1"  # faked: only the key is read
    assert inputs.key(layer=3)["device_kind"] == "cuda"


class _CountingSource(_Source):
    """Counts loads; the vocabulary of two tokens, the network a stand-in module."""

    def __init__(self) -> None:
        self.loads = {"matrix": 0, "model": 0}

    def load_tokenizer(self):
        from tiny_models import FakeTokenizer

        return FakeTokenizer(["▁a", "▁b"], [])

    def load_embedding_matrix(self):
        import numpy as np

        self.loads["matrix"] += 1
        return np.eye(2, dtype=np.float32)

    def load_model(self):
        import torch

        self.loads["model"] += 1
        return torch.nn.Linear(2, 2)


def test_an_input_no_task_reads_any_more_is_released_and_one_read_again_is_kept(tmp_path):
    import weakref

    source = _CountingSource()
    inputs = Representations(source, Cache(tmp_path))
    inputs.begin_task()  # task 1 reads the vocabulary
    matrix = weakref.ref(inputs.vocabulary.embeddings)
    inputs.begin_task()  # task 2 reads it again: kept, not loaded twice
    assert inputs.vocabulary.embeddings is matrix()
    inputs.begin_task()  # task 4 reads the network: the vocabulary is released before it loads
    model = weakref.ref(inputs.model)
    assert matrix() is None
    inputs.begin_task()  # task 5 reads the network again
    assert inputs.model is model()
    inputs.begin_task()  # a task that reads neither: the network goes at the next task's start
    inputs.begin_task()
    assert model() is None
    assert inputs.vocabulary.tokens == ["▁a", "▁b"]  # read again: from the cache
    assert source.loads == {"matrix": 1, "model": 1}
