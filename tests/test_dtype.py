"""The weights' dtype: chosen per run, resolved from the checkpoint, in every cache key, honoured in extraction.

Planted: float32 embeddings that bfloat16 cannot represent exactly, so a read in the wrong dtype
(or a cache entry shared across dtypes) shows up as a value, not just as a label.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from xlingbench.core.errors import UserError
from xlingbench.harness.runner import RunRequest, plan
from xlingbench.harness.unit import provenance
from xlingbench.inputs.cache import Cache
from xlingbench.inputs.registry import resolve_model
from xlingbench.inputs.representations import Representations
from xlingbench.inputs.safetensors_read import read_rows
from xlingbench.inputs.sources import open_source
from xlingbench.inputs.word_vectors import KIND
from tests.tiny_models import FakeSource, encoder_model, save_model, save_model_in, sentencepiece_tokenizer

PIECES = ["\u2581water", "\u2581Wasser", "\u2581eau", "\u2581fire", "\u2581Feuer", "\u2581feu", "\u2581the", "\u2581a"]
SENTENCES = [["the", "water"], ["a", "fire", "Feuer"], ["eau", "feu", "Wasser", "the"], ["water", "a", "fire"]] * 3


@pytest.fixture(scope="module")
def planted() -> np.ndarray:
    return np.random.default_rng(3).normal(size=(4 + len(PIECES), 16)).astype(np.float32)


def _rounded(matrix: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    return torch.from_numpy(matrix).to(dtype).float().numpy()


def _values(matrix) -> np.ndarray:
    """A vocabulary's rows as float32 values (a bfloat16 or float16 model's are held as a torch tensor)."""
    return matrix if isinstance(matrix, np.ndarray) else matrix.float().numpy()


def _inputs(folder, cache_dir, dtype: str) -> Representations:
    return Representations(open_source(resolve_model(str(folder))), Cache(cache_dir), device="cpu", dtype=dtype)


def _vectors(inputs: Representations):
    return inputs.extract_vectors(SENTENCES, language="xx", batch_size=4)


def test_bf16_extraction_equals_float32_extraction_within_bf16_precision(tmp_path, planted):
    folder = save_model_in(tmp_path / "bf16", sentencepiece_tokenizer(PIECES), encoder_model(planted, layers=3), "bfloat16")
    wide, narrow = _inputs(folder, tmp_path / "cache", "float32"), _inputs(folder, tmp_path / "cache", "auto")
    assert (wide.model.dtype, narrow.model.dtype) == (torch.float32, torch.bfloat16)
    exact, low = _vectors(wide), _vectors(narrow)
    for layer in range(4):
        a, b = np.asarray(exact.layer(layer), np.float32), np.asarray(low.layer(layer), np.float32)
        relative = np.linalg.norm(a - b, axis=1) / np.linalg.norm(a, axis=1)
        assert relative.max() < 0.02, (layer, relative.max())  # bfloat16 keeps 8 bits: ~0.4% per rounding; 0.5-0.9% seen
        assert relative.max() > 1e-4, layer  # the bfloat16 forward really ran (equal forwards store equal float16)


def test_float32_and_bf16_runs_share_no_cache_entry(tmp_path, planted):
    folder = save_model(tmp_path / "f32", sentencepiece_tokenizer(PIECES), encoder_model(planted))
    wide, narrow = _inputs(folder, tmp_path / "cache", "float32"), _inputs(folder, tmp_path / "cache", "bfloat16")
    n = len(planted)
    np.testing.assert_array_equal(wide.vocabulary.embeddings[:n], planted)
    np.testing.assert_array_equal(_values(narrow.vocabulary.embeddings[:n]), _rounded(planted, torch.bfloat16))
    assert not np.array_equal(_values(narrow.vocabulary.embeddings[:n]), planted)
    _vectors(wide), _vectors(narrow)
    for kind in ("embeddings", KIND):
        assert len([p for p in (tmp_path / "cache" / kind).iterdir() if p.is_dir()]) == 2, kind
    assert wide.key()["model_dtype"] == "float32" and narrow.key()["model_dtype"] == "bfloat16"


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_auto_is_the_checkpoints_dtype(tmp_path, planted, dtype):
    folder = save_model_in(tmp_path / dtype, sentencepiece_tokenizer(PIECES), encoder_model(planted), dtype, max_shard_size="4KB")
    inputs = _inputs(folder, tmp_path / "cache", "auto")
    assert inputs.dtype == dtype
    np.testing.assert_array_equal(_values(inputs.vocabulary.embeddings[: len(planted)]), _rounded(planted, getattr(torch, dtype)))


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_a_half_precision_model_is_held_in_its_own_dtype_from_the_cache_too(tmp_path, planted, dtype):
    """Tasks 1-3 hold a bfloat16 or float16 model's matrix as it is (half the float32 rows' memory):
    read from the checkpoint, then again from the cache, the same values in the model's dtype; the
    cache entry is not the float32 one of a release that widened it."""
    folder = save_model_in(tmp_path / dtype, sentencepiece_tokenizer(PIECES), encoder_model(planted), dtype)
    held = [_inputs(folder, tmp_path / "cache", "auto").vocabulary.embeddings for _ in range(2)]
    for matrix in held:
        assert isinstance(matrix, torch.Tensor) and matrix.dtype == getattr(torch, dtype)
        np.testing.assert_array_equal(_values(matrix[: len(planted)]), _rounded(planted, getattr(torch, dtype)))
    (entry,) = [p for p in (tmp_path / "cache" / "embeddings").iterdir() if p.is_dir()]
    assert json.loads((entry / "meta.json").read_text())["stored"] == dtype


def test_a_non_finite_half_precision_matrix_is_refused_before_it_is_cached(tmp_path, planted):
    """The floats are checked before they are narrowed to bfloat16 bits, which the cache's check cannot read."""
    broken = planted.copy()
    broken[2, 3] = np.nan
    folder = save_model_in(tmp_path / "nan", sentencepiece_tokenizer(PIECES), encoder_model(broken), "bfloat16")
    with pytest.raises(UserError, match="non-finite"):
        _inputs(folder, tmp_path / "cache", "auto").vocabulary
    assert not [p for p in (tmp_path / "cache" / "embeddings").iterdir() if p.is_dir()]


def test_auto_falls_back_to_the_embedding_tensors_dtype(tmp_path, planted):
    folder = save_model_in(tmp_path / "m", sentencepiece_tokenizer(PIECES), encoder_model(planted), "bfloat16")
    config = {k: v for k, v in json.loads((folder / "config.json").read_text()).items() if k not in ("dtype", "torch_dtype")}
    (folder / "config.json").write_text(json.dumps(config))
    assert _inputs(folder, tmp_path / "cache", "auto").dtype == "bfloat16"


def test_a_bad_dtype_is_one_line_before_anything_loads(tmp_path):
    with pytest.raises(UserError) as caught:
        plan(RunRequest(models=["no-such-model"], tasks=["no-such-task"], dtype="bf16", cache_dir=tmp_path))
    assert "--dtype 'bf16'" in caught.value.problem and "bfloat16" in caught.value.one_line()
    assert "\n" not in caught.value.one_line()


def test_a_float32_only_source_refuses_another_dtype(tmp_path, planted):
    source = FakeSource(["a"] * len(planted), planted, [])
    assert Representations(source, Cache(tmp_path), dtype="auto").key()["model_dtype"] == "float32"
    with pytest.raises(UserError, match="loads float32 only"):
        Representations(source, Cache(tmp_path), dtype="bfloat16").vocabulary


def test_provenance_records_the_dtype():
    assert provenance("cpu", "bfloat16")["dtype"] == "bfloat16"


@pytest.mark.parametrize("device, placed", [("cpu", False), ("cuda:1", True)])
def test_model_is_loaded_in_the_dtype_and_placed_by_device_map_on_gpu(tmp_path, planted, monkeypatch, device, placed):
    import transformers

    calls = []
    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", lambda *a, **k: calls.append(k) or torch.nn.Linear(1, 1))
    source = open_source(resolve_model(str(save_model(tmp_path / "m", sentencepiece_tokenizer(PIECES), encoder_model(planted)))))
    source.load_model(dtype="bfloat16", device=device)
    assert calls[0]["dtype"] == torch.bfloat16 and calls[0].get("device_map") == (device if placed else None)


def test_reading_widens_into_one_float32_array(tmp_path, monkeypatch):
    """The read's Python-side allocations peak at the result plus blocks, not at a second copy."""
    import tracemalloc

    from safetensors.torch import save_file

    monkeypatch.setattr("xlingbench.inputs.safetensors_read.READ_BLOCK_BYTES", 1 << 16)
    stored = torch.randn(4096, 256).to(torch.bfloat16)
    save_file({"w": stored}, str(tmp_path / "t.safetensors"))
    tracemalloc.start()
    matrix = read_rows(str(tmp_path / "t.safetensors"), "w", "bfloat16")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_array_equal(matrix, stored.float().numpy())
    assert peak < 1.1 * matrix.nbytes, peak / matrix.nbytes


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
def test_reading_in_the_stored_form_gives_the_widened_reads_values_in_half_the_memory(tmp_path, monkeypatch, dtype):
    """``widen=False`` reads a half-precision matrix straight into its stored form (bfloat16 bits,
    float16): the values of the float32 read, and at most the stored result plus blocks."""
    import tracemalloc

    from safetensors.torch import save_file

    from xlingbench.inputs.held_matrix import held_matrix, stored_matrix

    monkeypatch.setattr("xlingbench.inputs.safetensors_read.READ_BLOCK_BYTES", 1 << 16)
    save_file({"w": torch.randn(4096, 256).to(getattr(torch, dtype))}, str(tmp_path / "t.safetensors"))
    tracemalloc.start()
    stored = read_rows(str(tmp_path / "t.safetensors"), "w", dtype, widen=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    widened = read_rows(str(tmp_path / "t.safetensors"), "w", dtype)
    assert stored.itemsize == (4 if dtype == "float32" else 2) and peak < 1.1 * stored.nbytes, peak / stored.nbytes
    np.testing.assert_array_equal(stored, stored_matrix(widened, dtype))
    np.testing.assert_array_equal(_values(held_matrix(stored, dtype)), widened)


@pytest.mark.parametrize(("value", "problem"), [(np.inf, "1 non-finite"), (0.0, "all zeros")])
def test_the_cache_check_reads_bfloat16_bits_as_floats(value, problem):
    """An infinity (a NaN in the other test) or an all-zero matrix is refused in its stored bfloat16 form too."""
    from xlingbench.inputs.held_matrix import check_stored, stored_matrix

    matrix = np.ones((3, 4), np.float32) * (value if value == 0.0 else 1.0)
    matrix[1, 2] = value
    assert problem in check_stored({"E": stored_matrix(matrix, "bfloat16")}, "bfloat16")
    assert check_stored({"E": stored_matrix(np.ones((3, 4), np.float32) * -0.5, "bfloat16")}, "bfloat16") is None
