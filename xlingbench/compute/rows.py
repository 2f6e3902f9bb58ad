"""Unit rows of an embedding matrix, gathered and converted a chunk at a time.

Why: the matrix reaches tasks 1-3 in the model's own dtype (bfloat16 for most decoders), and a
float32 or float64 copy of the whole of it is what ran task 1 out of memory at Gemma-2-2B's shape.
The probe needs only the rows it samples, so they are gathered, converted and normalised in
chunks of ``CHUNK`` rows straight into the one float32 buffer the fit reads.

A row is normalised as ``Vocabulary.unit_embeddings`` normalises it (its float32 norm, then a
float32 division), so a gathered row is bit-identical to that matrix's row: the chunking changes
memory, not numbers.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

CHUNK = 8192  # rows converted at once: 8192 x 4096 float32 = 128 MB at an 8B model's width


def float32_rows(matrix: Any, ids: np.ndarray) -> np.ndarray:
    """Rows ``ids`` of ``matrix`` (a numpy array, or a torch tensor of any float dtype) as float32."""
    if isinstance(matrix, np.ndarray):
        return np.take(matrix, ids, axis=0).astype(np.float32, copy=False)  # take: ~8x faster than matrix[ids]
    import torch

    # a slice for consecutive ids, copied into a float32 array: at Gemma-2-2B's shape 3-5x faster than
    # gathering every chunk and converting it with .float() (a new tensor each time)
    consecutive = len(ids) > 0 and np.array_equal(ids, np.arange(ids[0], ids[0] + len(ids)))
    rows = matrix[int(ids[0]) : int(ids[0]) + len(ids)] if consecutive else matrix[torch.from_numpy(np.ascontiguousarray(ids))]
    out = np.empty((len(ids), matrix.shape[1]), dtype=np.float32)
    torch.from_numpy(out).copy_(rows)
    return out


def row_norms(rows: np.ndarray, squares: np.ndarray) -> np.ndarray:
    """Each float32 row's L2 norm ``(n, 1)``, as ``np.linalg.norm(rows, axis=1, keepdims=True)``
    computes it (squares, then numpy's sum along the row, then the root: the same numbers), with the
    squares written into ``squares`` (at least ``rows``' shape): norm's own two temporaries of the
    block's size were mapped and faulted in anew for every block.

    >>> row_norms(np.array([[3, 4], [0, 0]], dtype=np.float32), np.empty((2, 2), np.float32)).ravel().tolist()
    [5.0, 0.0]
    """
    squared = np.multiply(rows, rows, out=squares[: len(rows)])
    return np.sqrt(np.add.reduce(squared, axis=1, keepdims=True))


def unit_rows(matrix: Any, ids: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Rows ``ids`` of ``matrix`` L2-normalised in float32, written chunk by chunk into ``out``
    (``len(ids) x d``; a strided view is fine) or a new array.

    >>> matrix = np.array([[3, 4], [0, 0], [1, 0]], dtype=np.float32)
    >>> unit_rows(matrix, np.array([2, 0, 1]))
    array([[1. , 0. ],
           [0.6, 0.8],
           [0. , 0. ]], dtype=float32)
    """
    ids = np.asarray(ids, dtype=np.int64)
    out = np.empty((len(ids), matrix.shape[1]), dtype=np.float32) if out is None else out
    for start, rows, norms in _chunks_with_norms(matrix, ids):
        np.divide(rows, norms, out=out[start : start + len(rows)])
    return out


def unit_norms(matrix: Any, ids: np.ndarray) -> np.ndarray:
    """The ``(len(ids), 1)`` float32 norms :func:`unit_rows` divides rows ``ids`` by (clamped as it
    clamps), without their unit copy: for a fit that normalises the rows as it reads them.

    >>> unit_norms(np.array([[3, 4], [6, 8]], dtype=np.float32), np.array([1, 0])).ravel().tolist()
    [10.0, 5.0]
    """
    ids = np.asarray(ids, dtype=np.int64)
    out = np.empty((len(ids), 1), dtype=np.float32)
    for start, rows, norms in _chunks_with_norms(matrix, ids):
        out[start : start + len(rows)] = norms
    return out


def _chunks_with_norms(matrix: Any, ids: np.ndarray) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Per chunk of ``ids``: its start, its rows in float32 and their clamped norms."""
    squares = np.empty((min(CHUNK, len(ids)), matrix.shape[1]), dtype=np.float32)
    for start in range(0, len(ids), CHUNK):
        rows = float32_rows(matrix, ids[start : start + CHUNK])
        yield start, rows, np.maximum(row_norms(rows, squares), 1e-12)
