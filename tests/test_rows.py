"""Unit rows gathered a chunk at a time are the rows of the whole normalised matrix, bit for bit."""
from __future__ import annotations

import numpy as np
import torch

from xlingbench.compute import rows as rows_module
from xlingbench.compute.rows import unit_rows
from xlingbench.inputs.vocab import Vocabulary


def test_chunked_rows_equal_the_vocabulary_unit_rows_bit_for_bit(monkeypatch) -> None:
    matrix = np.random.default_rng(0).normal(size=(1000, 24)).astype(np.float32) * 3
    matrix[7] = 0  # a zero row stays zero
    whole = Vocabulary("m", [""] * len(matrix), matrix, frozenset(), "sentencepiece").unit_embeddings
    monkeypatch.setattr(rows_module, "CHUNK", 64)  # many chunks, a short last one
    ids = np.random.default_rng(1).permutation(len(matrix))[:700]
    np.testing.assert_array_equal(unit_rows(matrix, ids), whole[ids])
    out = np.zeros((700, 25), dtype=np.float32)
    unit_rows(matrix, ids, out=out[:, :-1])  # into a strided view
    np.testing.assert_array_equal(out[:, :-1], whole[ids])
    assert not out[:, -1].any()


def test_a_bfloat16_tensor_is_converted_as_float32() -> None:
    matrix = torch.randn(300, 16, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    ids = np.arange(300)[::-2]
    np.testing.assert_array_equal(unit_rows(matrix, ids), unit_rows(matrix.float().numpy(), ids))


def test_norms_and_unit_rows_are_numpys_bit_for_bit() -> None:
    """The buffered norms are ``np.linalg.norm``'s, and unit rows its division, at e5's and an 8B model's widths."""
    for width in (384, 4096):
        matrix = np.random.default_rng(width).normal(size=(300, width)).astype(np.float32) * 3
        expected = np.linalg.norm(matrix, axis=1, keepdims=True)
        np.testing.assert_array_equal(rows_module.row_norms(matrix, np.empty_like(matrix)), expected)
        np.testing.assert_array_equal(unit_rows(matrix, np.arange(300)), matrix / np.maximum(expected, 1e-12))


def test_a_tensors_rows_are_its_rows_whether_sliced_or_gathered() -> None:
    """Consecutive ids are read as a slice, any others gathered: the same float32 rows either way."""
    matrix = torch.randn(40, 6).to(torch.bfloat16)
    widened = matrix.float().numpy()
    for ids in (np.arange(5, 17), np.arange(3), np.array([7]), np.array([9, 8, 7]), np.array([2, 4, 3, 5]),
                np.array([0, 2, 1, 3]), np.array([], dtype=np.int64)):
        found = rows_module.float32_rows(matrix, ids)
        assert found.dtype == np.float32 and found.shape == (len(ids), 6)
        np.testing.assert_array_equal(found, widened[ids])
