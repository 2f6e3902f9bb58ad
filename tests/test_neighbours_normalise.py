"""``normalise=True``: neighbours and ranks from the raw matrix, its rows normalised a block at a
time, equal those from the whole unit matrix, bit for bit; a bfloat16 tensor is read as its values."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from xlingbench.compute.neighbours import best_target_ranks, top_k_neighbours
from xlingbench.compute.rows import CHUNK
from xlingbench.inputs.vocab import Vocabulary


def raw_matrix(rows: int = 2 * CHUNK + 321, dim: int = 24, seed: int = 3) -> np.ndarray:
    """Rows of unequal norms, with exact duplicates (ties) across block edges."""
    rng = np.random.default_rng(seed)
    matrix = (rng.normal(size=(rows, dim)) * rng.uniform(0.1, 10, size=(rows, 1))).astype(np.float32)
    matrix[[CHUNK, 2 * CHUNK + 5, 17]] = matrix[3]
    return matrix


def unit_of(matrix) -> np.ndarray:
    return Vocabulary("m", [""] * len(matrix), matrix, frozenset(), "sentencepiece").unit_embeddings


def test_unit_embeddings_equal_the_whole_matrix_division() -> None:
    matrix = raw_matrix()
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    np.testing.assert_array_equal(unit_of(matrix), matrix / np.maximum(norms, 1e-12))


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_top_k_from_the_raw_matrix_equals_top_k_from_unit_rows(precision: str) -> None:
    matrix = raw_matrix()
    queries = np.array([0, 3, 17, CHUNK - 1, CHUNK, len(matrix) - 1])
    exclude = [np.array([5, CHUNK + 1])] + [np.empty(0, dtype=np.int64)] * 5
    want = top_k_neighbours(unit_of(matrix), queries, 30, exclude=exclude, precision=precision, chunk_size=4)
    got = top_k_neighbours(matrix, queries, 30, exclude=exclude, precision=precision, chunk_size=4, normalise=True)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    assert {CHUNK, 2 * CHUNK + 5, 17} <= set(got[0][1].tolist())  # the duplicates of row 3 are its nearest


def test_ranks_from_the_raw_matrix_equal_ranks_from_unit_rows() -> None:
    matrix = raw_matrix()
    rng = np.random.default_rng(4)
    queries = rng.choice(len(matrix), 40, replace=False)
    groups = [[rng.choice(len(matrix), rng.integers(1, 4), replace=False) for _ in range(rng.integers(1, 4))] for _ in queries]
    want = best_target_ranks(unit_of(matrix), queries, groups, chunk_size=16)
    got = best_target_ranks(matrix, queries, groups, chunk_size=16, normalise=True)
    for w, g in zip(want, got):
        np.testing.assert_array_equal(g, w)


def test_a_bfloat16_tensor_is_normalised_from_its_values() -> None:
    matrix = torch.from_numpy(raw_matrix()).to(torch.bfloat16)
    widened = matrix.float().numpy()
    queries = np.array([1, 2, CHUNK + 7])
    want = top_k_neighbours(unit_of(widened), queries, 10)
    got = top_k_neighbours(matrix, queries, 10, normalise=True)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(unit_of(matrix), unit_of(widened))


def test_a_raw_matrix_with_nan_is_refused() -> None:
    matrix = raw_matrix()
    matrix[CHUNK + 2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        top_k_neighbours(matrix, np.array([0]), 3, normalise=True)


def test_a_zero_row_and_block_edges_give_the_unit_matrix_similarities() -> None:
    """Norms taken once per row (the finiteness pass) divide as unit_rows divides: a zero row
    (norm clamped to 1e-12) and rows either side of a block edge give the same float32 ranks."""
    matrix = raw_matrix()
    matrix[[CHUNK - 1, CHUNK + 2]] = 0
    queries = np.array([0, CHUNK - 2, CHUNK, CHUNK + 1, len(matrix) - 1])
    groups = [[np.array([CHUNK - 1, 7]), np.array([CHUNK + 2])]] * len(queries)
    want = best_target_ranks(unit_of(matrix), queries, groups, chunk_size=2)
    got = best_target_ranks(matrix, queries, groups, chunk_size=2, normalise=True)
    for w, g in zip(want, got):
        np.testing.assert_array_equal(g, w)
