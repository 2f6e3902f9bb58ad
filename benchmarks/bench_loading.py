"""Reading only the input embedding tensor against loading the whole model (tasks 1-3's load phase).

The model is XLM-R-base-shaped (250,002 x 768 embeddings, 12 layers; ~1.1 GB in fp32
safetensors), randomly initialised once per session and published to the offline Hub cache,
so both sides go through the same path a Hub model takes. Run:
``python -m pytest benchmarks/bench_loading.py --benchmark-enable``; the ratio of the two means
is the figure to quote.
"""
from __future__ import annotations

import pytest

from xlingbench.inputs.registry import ModelSpec
from xlingbench.inputs.sources import PretrainedSource
from tests.tiny_models import publish

REPO = "bench/xlmr-base-shaped"


@pytest.fixture(scope="session")
def base_sized_model(tmp_path_factory, hub_cache) -> str:
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel

    torch.manual_seed(0)
    with torch.device("cpu"):
        model = XLMRobertaModel(XLMRobertaConfig(vocab_size=250_002), add_pooling_layer=False)
    folder = tmp_path_factory.mktemp("base") / "model"
    model.save_pretrained(folder)
    from tests.tiny_models import sentencepiece_tokenizer

    sentencepiece_tokenizer(["\u2581a"]).save_pretrained(folder)
    publish(folder, hub_cache, REPO, "main")
    return REPO


def _source(repo: str) -> PretrainedSource:
    return PretrainedSource(ModelSpec(name="bench", hub_id=repo), "main")


def test_read_embedding_tensor_only(benchmark, base_sized_model):
    matrix = benchmark.pedantic(lambda: _source(base_sized_model).load_embedding_matrix(), rounds=5, iterations=1)
    assert matrix.shape == (250_002, 768)


def test_load_full_model_baseline(benchmark, base_sized_model):
    def load():
        model = _source(base_sized_model).load_model()
        return model.get_input_embeddings().weight.detach().numpy()

    matrix = benchmark.pedantic(load, rounds=5, iterations=1)
    assert matrix.shape == (250_002, 768)
